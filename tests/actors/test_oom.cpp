// Allocation failures end to end. Injected (an engine decorator failing the KV allocation of one job, or
// the scratch allocation of every step of one job): that job alone ends with VRAM_OOM, the others finish
// with exactly the tokens of an undisturbed run, and the worker keeps serving. Real (the CPU engine's KV
// budget exhausted): VRAM_OOM for the job that does not fit, after which the stream admits fewer jobs at
// once, so the next ones wait instead of failing.
#include <catch2/catch.hpp>

#include "adapters/cpu_engine.hpp"
#include "tests/actors/support/faulty_engine.hpp"
#include "tests/actors/support/test_worker.hpp"

using namespace worker;
using namespace worker::test;

namespace {

std::vector<adapters::token_id> tokens_of(const std::vector<protocol::reply>& replies) {
  std::vector<adapters::token_id> out;
  for (const auto& r : replies) {
    if (const auto* t = std::get_if<protocol::token_reply>(&r)) out.insert(out.end(), t->token_ids.begin(), t->token_ids.end());
  }
  return out;
}

std::vector<std::string> kinds_of(const std::vector<protocol::reply>& replies) {
  std::vector<std::string> out;
  for (const auto& r : replies) out.push_back(kind_of(r));
  return out;
}

// Reads `job_id`'s replies until its first token (returns them).
std::vector<protocol::reply> until_first_token(test_client& c, const std::string& job_id) {
  std::vector<protocol::reply> out;
  for (;;) {
    auto r = c.recv(20s);
    REQUIRE(r.has_value());
    REQUIRE(job_of(*r) != nullptr);
    REQUIRE(*job_of(*r) == job_id);
    out.push_back(*r);
    REQUIRE_FALSE(is_terminal(*r));
    if (kind_of(*r) == "token") return out;
  }
}

struct faulty_worker {
  faulty_engine* engine = nullptr;
  std::unique_ptr<test_worker> worker;
  faulty_worker() {
    auto o = tiny_worker_options();
    o.load.factory = [this](const std::filesystem::path& path) {
      auto e = std::make_unique<faulty_engine>(adapters::open_cpu_engine(path, {}));
      engine = e.get();
      return e;
    };
    worker = std::make_unique<test_worker>(o);
  }
};

}  // namespace

TEST_CASE("a failed KV allocation fails that job with VRAM_OOM and nothing else", "[oom]") {
  faulty_worker fw;
  test_client c(fw.worker->listen());
  const auto healthy = prompt_job("healthy", "I keep running while another job runs out of memory", 24, 77);

  // The undisturbed run, for comparison.
  auto clean_job = healthy;
  clean_job.job_id = "clean";
  c.send(clean_job);
  const auto clean = tokens_of(c.until_terminal("clean"));

  c.send(healthy);
  auto first = until_first_token(c, "healthy");
  fw.engine->fail_next_opens(1);
  c.send(prompt_job("victim", "My KV cache will not fit", 8, 5));
  const auto victim = c.until_terminal("victim");
  CHECK(kinds_of(victim) == std::vector<std::string>{"accepted", "error"});
  const auto& err = std::get<protocol::error_reply>(victim.back());
  CHECK(err.code == protocol::error_code::vram_oom);
  CHECK(err.retriable);

  auto rest = c.until_terminal("healthy");
  first.insert(first.end(), rest.begin(), rest.end());
  CHECK(kind_of(first.back()) == "end");
  CHECK(tokens_of(first) == clean);
  CHECK(fw.engine->injected_failures() == 1);

  c.send(prompt_job("after", "Memory is back", 3, 1));
  CHECK(kind_of(c.until_terminal("after").back()) == "end");
}

TEST_CASE("a failed scratch allocation mid-job fails only that job", "[oom]") {
  faulty_worker fw;
  test_client c(fw.worker->listen());
  const auto healthy = prompt_job("healthy-2", "Steps with a poisoned neighbour", 24, 99);
  auto clean_job = healthy;
  clean_job.job_id = "clean-2";
  c.send(clean_job);
  const auto clean = tokens_of(c.until_terminal("clean-2"));

  c.send(healthy);
  auto first = until_first_token(c, "healthy-2");
  fw.engine->poison_next_open();
  c.send(prompt_job("victim-2", "My forward pass will fail", 8, 5));
  const auto victim = c.until_terminal("victim-2");
  CHECK(kinds_of(victim) == std::vector<std::string>{"accepted", "started", "error"});
  CHECK(std::get<protocol::error_reply>(victim.back()).code == protocol::error_code::vram_oom);

  auto rest = c.until_terminal("healthy-2");
  first.insert(first.end(), rest.begin(), rest.end());
  CHECK(kind_of(first.back()) == "end");
  CHECK(tokens_of(first) == clean);
  const auto s = std::get<protocol::status_report>(c.ask(protocol::status_request{}));
  CHECK(s.jobs_active == 0);
}

TEST_CASE("the CPU engine's KV budget running out gives VRAM_OOM, then the stream admits fewer jobs", "[oom]") {
  // KV of the tiny model: 2 (K, V) x 4 layers x 2 kv heads x 32 dims x 4 bytes = 2 KiB per position.
  // Each job below reserves prompt + 200 positions (> 400 KiB); the budget holds one such job, not two.
  auto o = tiny_worker_options();
  o.load.kv_budget_bytes = 700 * 1024;
  test_worker w(o);
  test_client c(w.listen());
  c.send(prompt_job("fits", "The first job fits", 200, 1));
  until_first_token(c, "fits");
  c.send(prompt_job("too-much", "The second does not", 200, 2));
  const auto refused = c.until_terminal("too-much");
  CHECK(kinds_of(refused) == std::vector<std::string>{"accepted", "error"});
  CHECK(std::get<protocol::error_reply>(refused.back()).code == protocol::error_code::vram_oom);

  // The stream now admits one job at a time: the next job waits for the first instead of failing.
  c.send(prompt_job("waits", "I wait for memory", 4, 3));
  const auto waits = c.until_terminal("waits", 60s);
  CHECK(kinds_of(waits).front() == "accepted");
  CHECK(kind_of(waits.back()) == "end");
  const auto fits = c.until_terminal("fits", 60s);
  CHECK(kind_of(fits.back()) == "end");
}
