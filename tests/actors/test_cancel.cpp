// Cancellation end to end: mid-stream, while queued, unknown and finished jobs, twice; a client that
// disconnects; a deadline; a graceful shutdown. Each stopped job gets exactly one terminal `error`, its
// KV slot is freed (status shows no active job) and the worker keeps serving. Latency bounds are
// generous (1 s) so that CI noise cannot fail them; bench_cancel_latency measures the distribution.
#include <catch2/catch.hpp>

#include <thread>

#include "tests/actors/support/test_worker.hpp"

using namespace worker;
using namespace worker::test;
using clock_type = std::chrono::steady_clock;

namespace {

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t).count();
}

// Reads replies of `job_id` until `n` tokens arrived (accepted and started included before them).
void wait_tokens(test_client& c, const std::string& job_id, int n) {
  int tokens = 0;
  while (tokens < n) {
    auto r = c.recv(20s);
    REQUIRE(r.has_value());
    const auto* j = job_of(*r);
    REQUIRE(j != nullptr);
    REQUIRE(*j == job_id);
    REQUIRE_FALSE(is_terminal(*r));
    tokens += std::holds_alternative<protocol::token_reply>(*r) ? 1 : 0;
  }
}

protocol::cancel_ack next_ack(test_client& c) {
  for (;;) {
    auto r = c.recv(10s);
    REQUIRE(r.has_value());
    if (auto* a = std::get_if<protocol::cancel_ack>(&*r)) return *a;
  }
}

// Polls status until no job is active or queued; returns how long it took.
double wait_idle(test_client& c, double limit_ms) {
  const auto t0 = clock_type::now();
  while (ms_since(t0) < limit_ms) {
    const auto s = std::get<protocol::status_report>(c.ask(protocol::status_request{}));
    if (s.jobs_active == 0 && s.jobs_queued == 0) return ms_since(t0);
    std::this_thread::sleep_for(5ms);
  }
  return limit_ms;
}

void check_still_serving(const std::string& endpoint) {
  test_client c(endpoint);
  c.send(prompt_job(numbered("after-", clock_type::now().time_since_epoch().count()), "Still there?", 2, 1));
  auto replies = c.recv(20s);
  REQUIRE(replies.has_value());
  CHECK(kind_of(*replies) == "accepted");
}

}  // namespace

TEST_CASE("cancel mid-stream ends the job with CANCELLED within a second and frees its slot", "[cancel]") {
  test_worker w;
  test_client c(w.listen());
  c.send(prompt_job("long-1", "Write a very long story", 400, 5));
  wait_tokens(c, "long-1", 3);
  const auto t0 = clock_type::now();
  c.send(protocol::cancel_request{"long-1", "cancel-1"});
  const auto rest = c.until_terminal("long-1", 10s);
  const double latency = ms_since(t0);
  const auto& err = std::get<protocol::error_reply>(rest.back());
  CHECK(err.code == protocol::error_code::cancelled);
  CHECK(err.retriable == false);
  CHECK(latency < 1000.0);
  for (std::size_t i = 0; i + 1 < rest.size(); ++i) CHECK(kind_of(rest[i]) == "token");
  const auto ack = next_ack(c);
  CHECK(ack.job_id == "long-1");
  CHECK(ack.request_id == std::optional<std::string>("cancel-1"));
  CHECK(ack.state == protocol::cancel_state::cancelling);
  CHECK(wait_idle(c, 1000) < 1000);
  CHECK_FALSE(c.recv(300ms).has_value());  // nothing after the terminal

  // Cancelling it again: it is finished now; no second terminal.
  c.send(protocol::cancel_request{"long-1", "cancel-2"});
  const auto again = next_ack(c);
  CHECK(again.state == protocol::cancel_state::finished);
  CHECK_FALSE(c.recv(300ms).has_value());
  check_still_serving(w.listen());
}

TEST_CASE("cancel of an unknown job and of a finished job only acknowledges", "[cancel]") {
  test_worker w;
  test_client c(w.listen());
  const auto unknown = std::get<protocol::cancel_ack>(c.ask(protocol::cancel_request{"never-submitted", std::nullopt}));
  CHECK(unknown.state == protocol::cancel_state::unknown);
  c.send(prompt_job("short-1", "Short", 2, 3));
  const auto replies = c.until_terminal("short-1");
  CHECK(kind_of(replies.back()) == "end");
  const auto finished = std::get<protocol::cancel_ack>(c.ask(protocol::cancel_request{"short-1", std::nullopt}));
  CHECK(finished.state == protocol::cancel_state::finished);
  CHECK_FALSE(c.recv(300ms).has_value());
}

TEST_CASE("a cancel sent twice in a row still gives one terminal", "[cancel]") {
  test_worker w;
  test_client c(w.listen());
  c.send(prompt_job("twice", "Cancel me twice", 400, 8));
  wait_tokens(c, "twice", 2);
  c.send(protocol::cancel_request{"twice", "x1"});
  c.send(protocol::cancel_request{"twice", "x2"});
  const auto rest = c.until_terminal("twice", 10s);
  CHECK(std::get<protocol::error_reply>(rest.back()).code == protocol::error_code::cancelled);
  const auto a1 = next_ack(c);
  const auto a2 = next_ack(c);
  CHECK(a1.request_id == std::optional<std::string>("x1"));
  CHECK(a2.request_id == std::optional<std::string>("x2"));
  CHECK_FALSE(c.recv(300ms).has_value());
}

TEST_CASE("cancelling a queued job ends it before it starts; the running one is unaffected", "[cancel]") {
  auto o = tiny_worker_options();
  o.slots = 1;
  test_worker w(o);
  test_client c(w.listen());
  c.send(prompt_job("runner", "I hold the only slot", 400, 1));
  wait_tokens(c, "runner", 1);
  c.send(prompt_job("waiter", "I wait", 5, 2));
  auto accepted = c.recv(10s);
  while (accepted && (job_of(*accepted) == nullptr || *job_of(*accepted) != "waiter")) accepted = c.recv(10s);
  REQUIRE(accepted.has_value());
  CHECK(std::get<protocol::accepted_reply>(*accepted).queue_position == 0);
  const auto status = std::get<protocol::status_report>(c.ask(protocol::status_request{}));
  CHECK(status.jobs_active == 1);
  CHECK(status.jobs_queued == 1);
  c.send(protocol::cancel_request{"waiter", std::nullopt});
  const auto waiter = c.until_terminal("waiter", 10s);
  REQUIRE(waiter.size() == 1);  // accepted was read above: no started, no token
  CHECK(std::get<protocol::error_reply>(waiter[0]).code == protocol::error_code::cancelled);
  c.send(protocol::cancel_request{"runner", std::nullopt});
  const auto runner = c.until_terminal("runner", 10s);
  CHECK(std::get<protocol::error_reply>(runner.back()).code == protocol::error_code::cancelled);
}

TEST_CASE("a client that disconnects has its jobs cancelled within a second", "[cancel]") {
  test_worker w;
  event_listener sub(w.events(), {"narration/-/", "narration/gone-1/"});
  std::this_thread::sleep_for(300ms);
  {
    test_client leaver(w.listen(), "leaver");
    leaver.send(prompt_job("gone-1", "I will vanish", 400, 4));
    wait_tokens(leaver, "gone-1", 2);
    leaver.close();
  }
  const auto t0 = clock_type::now();
  test_client observer(w.listen());
  CHECK(wait_idle(observer, 1000) < 1000);
  const auto events = sub.collect(3s, [](const protocol::event& e) {
    const auto* n = std::get_if<protocol::narration_event>(&e);
    return n != nullptr && n->job_id == std::optional<std::string>("gone-1") && n->action == "error";
  });
  bool gone = false, cancelled = false;
  for (const auto& [topic, e] : events) {
    const auto& n = std::get<protocol::narration_event>(e);
    gone = gone || n.action == "client_gone";
    cancelled = cancelled || (n.action == "error" && n.job_id == std::optional<std::string>("gone-1"));
  }
  CHECK(gone);
  CHECK(cancelled);
  CHECK(ms_since(t0) < 4000);
  check_still_serving(w.listen());
}

TEST_CASE("a job past its deadline ends with DEADLINE_EXCEEDED", "[cancel][deadline]") {
  test_worker w;
  test_client c(w.listen());
  auto job = prompt_job("deadline-1", "Too slow for my deadline", 400, 6);
  job.deadline_ms = 300;
  const auto t0 = clock_type::now();
  c.send(job);
  const auto replies = c.until_terminal("deadline-1", 10s);
  const double elapsed = ms_since(t0);
  const auto& err = std::get<protocol::error_reply>(replies.back());
  CHECK(err.code == protocol::error_code::deadline_exceeded);
  CHECK(kind_of(replies[0]) == "accepted");
  CHECK(elapsed >= 300.0);
  CHECK(elapsed < 1300.0);  // the deadline plus a generous second
  CHECK(wait_idle(c, 1000) < 1000);
}

TEST_CASE("shutdown cancels queued jobs, lets running ones finish in the drain time, and exits 0", "[cancel][shutdown]") {
  auto o = tiny_worker_options();
  o.slots = 1;
  o.drain = 300ms;
  test_worker w(o);
  test_client c(w.listen());
  c.send(prompt_job("draining", "A long job at shutdown", 400, 1));
  wait_tokens(c, "draining", 1);
  c.send(prompt_job("queued", "Never starts", 5, 2));
  auto r = c.recv(10s);
  while (r && (job_of(*r) == nullptr || *job_of(*r) != "queued")) r = c.recv(10s);
  REQUIRE(r.has_value());
  const auto t0 = clock_type::now();
  int code = -1;
  std::thread stopper([&] { code = w.stop(); });
  const auto queued = c.until_terminal("queued", 10s);
  CHECK(std::get<protocol::error_reply>(queued.back()).code == protocol::error_code::cancelled);
  const auto running = c.until_terminal("draining", 10s);
  CHECK(std::get<protocol::error_reply>(running.back()).code == protocol::error_code::cancelled);
  stopper.join();
  CHECK(code == 0);
  CHECK(ms_since(t0) < 300 + 2000);
}
