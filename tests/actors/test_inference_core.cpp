// inference_core, without actors or sockets: a job stepped by the core gives exactly what
// adapters::generate gives for the same prompt, seed and stop strings, alone or batched with others
// that join and leave at different steps; an allocation failure in a batched step fails only the job
// that fails alone. With an engine that samples on the device (a cuda_engine; emulated here over the
// CPU engine) every decode step goes through decode_sample, with the same tokens.
#include <catch2/catch.hpp>

#include <map>

#include "actors/inference_core.hpp"
#include "adapters/cpu_engine.hpp"
#include "adapters/generation.hpp"
#include "model/chat/chat_format.hpp"
#include "protocol/utf8.hpp"
#include "tests/actors/support/device_sampling_engine.hpp"
#include "tests/actors/support/faulty_engine.hpp"
#include "tests/actors/support/test_worker.hpp"

using namespace worker;
using actors::job_plan;

namespace {

struct run_result {
  std::vector<adapters::token_id> tokens;
  std::string text;
  std::optional<protocol::stop_reason> reason;
  std::string stop_string;
  std::optional<protocol::error_code> failure;
};

std::shared_ptr<actors::model_bundle> load(actors::engine_factory factory = {}) {
  actors::load_options o;
  o.model = test::tiny_model_path();
  o.max_context = 512;
  o.factory = std::move(factory);
  return actors::load_model_bundle(o, {});
}

// The tiny model behind an engine decorator `E` over the CPU engine; `out` points at the decorator.
template <typename E>
std::shared_ptr<actors::model_bundle> load_wrapped(E*& out) {
  return load([&out](const std::filesystem::path& path) {
    auto e = std::make_unique<E>(adapters::open_cpu_engine(path, {}));
    out = e.get();
    return e;
  });
}

job_plan plan(const actors::model_bundle& m, std::string id, const std::string& prompt, std::uint32_t max_tokens,
              std::uint64_t seed, std::vector<std::string> stop = {}) {
  job_plan p;
  p.job_id = std::move(id);
  const auto ids = m.tokenizer.encode(prompt);
  p.prompt.assign(ids.begin(), ids.end());
  p.max_tokens = max_tokens;
  p.sampling.temperature = 0.9f;
  p.sampling.top_k = 50;
  p.sampling.seed = seed;
  p.stop_strings = std::move(stop);
  return p;
}

adapters::generation_result reference(actors::model_bundle& m, const job_plan& p, std::size_t chunk) {
  adapters::generation_request r;
  r.prompt = p.prompt;
  r.sampling = p.sampling;
  r.max_tokens = p.max_tokens;
  r.eog_tokens = m.eog;
  r.stop_strings = p.stop_strings;
  adapters::generation_hooks hooks;
  hooks.token_text = [&](adapters::token_id t) {
    return std::string(m.tokenizer.token_bytes(static_cast<model::token_id>(t)));
  };
  hooks.prefill_chunk = chunk;
  return adapters::generate(*m.engine.engine, r, hooks);
}

// Steps the core until every job finished, admitting `late` jobs once `admit_after` steps have run.
std::map<std::string, run_result> run(actors::inference_core& core, std::vector<job_plan> now,
                                      std::vector<job_plan> late = {}, int admit_after = 0) {
  std::map<std::string, run_result> out;
  for (auto& p : now) REQUIRE_FALSE(core.admit(std::move(p)).has_value());
  int steps = 0;
  while (!core.idle() || !late.empty()) {
    if (steps == admit_after) {
      for (auto& p : late) REQUIRE_FALSE(core.admit(std::move(p)).has_value());
      late.clear();
    }
    for (auto& p : core.step()) {
      auto& r = out[p.job_id];
      if (p.token) r.tokens.push_back(*p.token);
      r.text += p.text;
      if (p.finished) {
        if (p.failure) {
          r.failure = p.failure->code;
        } else {
          r.reason = p.reason;
          r.stop_string = p.stop_string;
        }
      }
    }
    ++steps;
  }
  return out;
}

// (Appending instead of `"x" + std::to_string(i)`, which trips GCC 12's -Wrestrict false positive at -O3.)
std::string numbered(std::string prefix, int i) {
  prefix += std::to_string(i);
  return prefix;
}

protocol::stop_reason expected_reason(adapters::stop_reason r) {
  switch (r) {
    case adapters::stop_reason::eog: return protocol::stop_reason::eos;
    case adapters::stop_reason::stop_string: return protocol::stop_reason::stop_sequence;
    default: return protocol::stop_reason::max_tokens;
  }
}

// Every job finished as generate() did: its tokens, its text on the wire, its stop reason.
void check_against(std::map<std::string, run_result>& got, const std::map<std::string, adapters::generation_result>& refs) {
  REQUIRE(got.size() == refs.size());
  for (const auto& [id, ref] : refs) {
    INFO("job " << id);
    CHECK(got[id].tokens == ref.tokens);
    CHECK(got[id].text == test::as_wire_text(ref.text));
    CHECK_FALSE(got[id].failure.has_value());
    CHECK(got[id].reason == expected_reason(ref.reason));
  }
}

}  // namespace

TEST_CASE("a job stepped by the core equals adapters::generate", "[inference_core]") {
  auto m = load();
  const auto p = plan(*m, "a", "The quick brown fox jumps over the lazy dog. Once upon a time", 12, 1234);
  const auto ref = reference(*m, p, 4);
  actors::inference_core core(m, 4);  // 4-token prefill chunks: the prompt takes several steps
  auto got = run(core, {p});
  CHECK(got["a"].tokens == ref.tokens);
  CHECK(got["a"].text == test::as_wire_text(ref.text));
  CHECK(got["a"].reason == expected_reason(ref.reason));
  CHECK(ref.tokens.size() == 12);
}

TEST_CASE("jobs batched together, joining late, equal their solo runs", "[inference_core]") {
  auto m = load();
  std::vector<job_plan> first, late;
  for (int i = 0; i < 4; ++i) {
    first.push_back(plan(*m, numbered("f", i), numbered("Hello world number ", i), 6 + i, 100 + i));
  }
  for (int i = 0; i < 3; ++i) {
    late.push_back(plan(*m, numbered("l", i), numbered("A late prompt that is a little longer ", i), 5, 200 + i));
  }
  // The same seed and prompt twice: identical output however they are batched.
  first.push_back(plan(*m, "twin-a", "Twins", 8, 77));
  late.push_back(plan(*m, "twin-b", "Twins", 8, 77));

  std::map<std::string, adapters::generation_result> refs;
  for (const auto& p : first) refs[p.job_id] = reference(*m, p, 8);
  for (const auto& p : late) refs[p.job_id] = reference(*m, p, 8);

  actors::inference_core core(m, 8);
  auto got = run(core, first, late, 3);
  check_against(got, refs);
  CHECK(got["twin-a"].tokens == got["twin-b"].tokens);
}

TEST_CASE("stop strings end the job on the token that completes them, as generate does", "[inference_core]") {
  auto m = load();
  // Find a stop string the model will produce: the text of a greedy run's 4th token onward.
  auto probe = plan(*m, "probe", "Stop strings are tested here", 10, 5);
  const auto free_run = reference(*m, probe, 64);
  REQUIRE(free_run.text.size() > 4);
  const std::string stop = free_run.text.substr(free_run.text.size() / 2, 3);
  auto p = plan(*m, "s", "Stop strings are tested here", 10, 5, {stop});
  const auto ref = reference(*m, p, 64);
  REQUIRE(ref.reason == adapters::stop_reason::stop_string);
  actors::inference_core core(m, 64);
  auto got = run(core, {p});
  CHECK(got["s"].reason == protocol::stop_reason::stop_sequence);
  CHECK(got["s"].stop_string == stop);
  CHECK(got["s"].tokens == ref.tokens);
  CHECK(got["s"].text == test::as_wire_text(ref.text));
  CHECK(got["s"].text.find(stop) == std::string::npos);
}

TEST_CASE("bytes that are not UTF-8 reach the client as U+FFFD, with generate's token ids", "[inference_core][utf8]") {
  auto m = load();
  // Random weights emit stray byte tokens now and then. 16 seeds of a chat prompt in one batch; at least
  // one must give output that is not valid UTF-8 (checked, so that the test cannot become vacuous).
  model::chat_request chat;
  chat.messages = {{model::chat_role::user, "Write a haiku about a GPU."}};
  const auto ids = model::chat_render(m->tokenizer, model::chat_format_kind::chatml, chat).ids;
  std::vector<job_plan> plans;
  std::vector<adapters::generation_request> requests;
  for (int i = 0; i < 16; ++i) {
    auto p = plan(*m, numbered("b", i), "", 48, 7 + static_cast<std::uint64_t>(i));
    p.prompt.assign(ids.begin(), ids.end());
    p.sampling.top_k = 0;
    p.sampling.temperature = 1.0f;
    adapters::generation_request r;
    r.prompt = p.prompt;
    r.sampling = p.sampling;
    r.max_tokens = p.max_tokens;
    r.eog_tokens = m->eog;
    requests.push_back(r);
    plans.push_back(std::move(p));
  }
  adapters::generation_hooks hooks;
  hooks.token_text = [&](adapters::token_id t) {
    return std::string(m->tokenizer.token_bytes(static_cast<model::token_id>(t)));
  };
  const auto refs = adapters::generate_batch(*m->engine.engine, requests, hooks);
  int invalid = 0;
  for (const auto& r : refs) invalid += protocol::is_valid_utf8(r.text) ? 0 : 1;
  REQUIRE(invalid > 0);

  actors::inference_core core(m, 64);
  auto got = run(core, plans);
  for (int i = 0; i < 16; ++i) {
    const auto& g = got[plans[i].job_id];
    INFO("seed " << plans[i].sampling.seed);
    CHECK(g.tokens == refs[i].tokens);
    CHECK(protocol::is_valid_utf8(g.text));
    CHECK(g.text == test::as_wire_text(refs[i].text));
  }
}

TEST_CASE("an allocation failure inside a batch fails only the job that fails alone", "[inference_core][oom]") {
  test::faulty_engine* faulty = nullptr;
  auto m = load_wrapped(faulty);
  const auto healthy = plan(*m, "healthy", "This job must not notice anything", 8, 42);
  const auto ref = reference(*m, healthy, 64);

  actors::inference_core core(m, 64);
  REQUIRE_FALSE(core.admit(healthy).has_value());
  faulty->poison_next_open();
  REQUIRE_FALSE(core.admit(plan(*m, "victim", "This job will run out of memory", 8, 43)).has_value());
  faulty->fail_next_opens(1);
  const auto refused = core.admit(plan(*m, "refused", "No KV cache for this one", 8, 44));
  REQUIRE(refused.has_value());
  CHECK(refused->code == protocol::error_code::vram_oom);
  CHECK(core.active() == 2);

  auto got = run(core, {});
  CHECK(got["victim"].failure == protocol::error_code::vram_oom);
  CHECK(got["victim"].tokens.empty());
  CHECK_FALSE(got["healthy"].failure.has_value());
  CHECK(got["healthy"].tokens == ref.tokens);
  CHECK(core.oom_failures() == 2);
  CHECK(core.idle());
}

TEST_CASE("a prompt that does not fit the context is refused before anything is allocated", "[inference_core]") {
  auto m = load();
  actors::inference_core core(m, 64);
  auto p = plan(*m, "big", "hello", 600, 1);  // context is 512
  const auto f = core.admit(p);
  REQUIRE(f.has_value());
  CHECK(f->code == protocol::error_code::context_overflow);
  CHECK(core.idle());
}

TEST_CASE("on a device-sampling engine every decode step goes through decode_sample, with generate's tokens",
          "[inference_core][device_sampling]") {
  test::device_sampling_engine* device = nullptr;
  auto m = load_wrapped(device);
  std::vector<job_plan> jobs;
  for (int i = 0; i < 4; ++i) {
    auto p = plan(*m, numbered("d", i), numbered("Sampling on the device, job ", i), 7 + i, 300 + i);
    p.sampling.repetition_penalty = 1.3f;  // the history handed to the device sampler matters
    p.sampling.frequency_penalty = 0.2f;
    jobs.push_back(std::move(p));
  }
  std::map<std::string, adapters::generation_result> refs;
  for (const auto& p : jobs) refs[p.job_id] = reference(*m, p, 64);

  const auto forward_before = device->forward_items();  // the references ran through forward()
  actors::inference_core core(m, 64);                     // each prompt is one prefill item
  auto got = run(core, jobs);
  std::uint64_t decode_steps = 0;
  for (const auto& [id, ref] : refs) {
    INFO("job " << id);
    CHECK(got[id].tokens == ref.tokens);
    CHECK_FALSE(got[id].failure.has_value());
    decode_steps += ref.tokens.size() - 1;  // the first token comes from the prefill's logits
  }
  CHECK(device->sampled_items() == decode_steps);
  CHECK(device->forward_items() - forward_before == jobs.size());  // prefill only
}

// Pipelined decode: jobs without penalties take their input token from the step before, enqueued
// before that step is read. Jobs joining late, ending on a stop string (one step's token dropped
// unread), at max_tokens, and one removed while its steps are in flight: every finished job has
// generate()'s tokens and text.
TEST_CASE("pipelined decode steps on a device-sampling engine keep generate's tokens", "[inference_core][device_sampling]") {
  test::device_sampling_engine* device = nullptr;
  auto m = load_wrapped(device);
  auto probe = plan(*m, "probe", "Stop strings are tested here", 10, 5);
  const auto free_run = reference(*m, probe, 64);
  REQUIRE(free_run.text.size() > 4);
  const std::string stop = free_run.text.substr(free_run.text.size() / 2, 3);

  std::vector<job_plan> first, late;
  for (int i = 0; i < 3; ++i) first.push_back(plan(*m, numbered("p", i), numbered("Pipelined job number ", i), 6 + 2 * i, 400 + i));
  first.push_back(plan(*m, "stopped", "Stop strings are tested here", 10, 5, {stop}));
  auto greedy = plan(*m, "greedy", "Greedy decoding, pipelined", 9, 1);
  greedy.sampling.temperature = 0.0f;
  first.push_back(greedy);
  late.push_back(plan(*m, "late", "A job that joins while others are in flight", 7, 9));

  std::map<std::string, adapters::generation_result> refs;
  for (const auto& p : first) refs[p.job_id] = reference(*m, p, 64);
  for (const auto& p : late) refs[p.job_id] = reference(*m, p, 64);
  REQUIRE(refs["stopped"].reason == adapters::stop_reason::stop_string);

  actors::inference_core core(m, 64);
  const auto pipelined_before = device->pipelined_steps();
  auto got = run(core, first, late, 3);
  check_against(got, refs);
  CHECK(device->pipelined_steps() > pipelined_before);

  // Removed while a step of it is in flight: nothing more arrives for it, the other job goes on.
  REQUIRE_FALSE(core.admit(plan(*m, "removed", "This job is cancelled mid-way", 30, 11)).has_value());
  const auto keep = plan(*m, "kept", "This job runs to its end", 8, 12);
  const auto keep_ref = reference(*m, keep, 64);
  REQUIRE_FALSE(core.admit(keep).has_value());
  std::map<std::string, run_result> out;
  for (int k = 0; k < 4; ++k) {
    for (auto& p : core.step()) {
      REQUIRE_FALSE(p.failure.has_value());
      if (p.token) out[p.job_id].tokens.push_back(*p.token);
    }
  }
  CHECK(core.remove("removed"));
  while (!core.idle()) {
    for (auto& p : core.step()) {
      CHECK(p.job_id == "kept");
      if (p.token) out[p.job_id].tokens.push_back(*p.token);
    }
  }
  CHECK(out["kept"].tokens == keep_ref.tokens);
}

TEST_CASE("an allocation failure in a device-sampled step fails only the job that fails alone",
          "[inference_core][device_sampling][oom]") {
  test::device_sampling_engine* device = nullptr;
  auto m = load_wrapped(device);
  const auto healthy = plan(*m, "healthy", "This job must not notice anything", 8, 42);
  const auto ref = reference(*m, healthy, 64);
  actors::inference_core core(m, 64);
  REQUIRE_FALSE(core.admit(healthy).has_value());
  device->poison_next_open();
  REQUIRE_FALSE(core.admit(plan(*m, "victim", "This job will run out of memory while sampling", 8, 43)).has_value());

  auto got = run(core, {});
  CHECK(got["victim"].failure == protocol::error_code::vram_oom);
  CHECK(got["victim"].tokens.size() == 1);  // its first token came from the prefill
  CHECK_FALSE(got["healthy"].failure.has_value());
  CHECK(got["healthy"].tokens == ref.tokens);
  CHECK(core.oom_failures() == 1);
  CHECK(core.idle());
}
