// Hostile and wrong input over the real socket: every case gets its typed error (and only that), and
// the worker keeps serving afterwards. Also the door's refusals: context overflow, duplicate job ids,
// a full queue, a worker still loading, frames of the wrong shape and oversized messages.
#include <catch2/catch.hpp>

#include <msgpack.hpp>

#include <cstdio>
#include <filesystem>
#include <random>
#include <thread>

#include "tests/actors/support/test_worker.hpp"

using namespace worker;
using namespace worker::test;

namespace {

// A msgpack map from (key, packer callback) pairs, for bodies the codec would never produce.
std::string raw_map(const std::vector<std::pair<std::string, std::function<void(msgpack::packer<msgpack::sbuffer>&)>>>& kv) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(static_cast<std::uint32_t>(kv.size()));
  for (const auto& [k, f] : kv) {
    pk.pack(k);
    f(pk);
  }
  return {buf.data(), buf.size()};
}

auto str(std::string s) {
  return [s](msgpack::packer<msgpack::sbuffer>& pk) {
    pk.pack_str(static_cast<std::uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
  };
}
auto num(std::int64_t v) {
  return [v](msgpack::packer<msgpack::sbuffer>& pk) { pk.pack_int64(v); };
}

protocol::error_reply expect_error(test_client& c, protocol::error_code code) {
  auto r = c.recv(10s);
  REQUIRE(r.has_value());
  INFO("reply kind " << kind_of(*r));
  REQUIRE(std::holds_alternative<protocol::error_reply>(*r));
  const auto e = std::get<protocol::error_reply>(*r);
  INFO("message: " << e.message);
  CHECK(e.code == code);
  return e;
}

void expect_serving(test_client& c) {
  const auto pong = c.ask(protocol::ping_request{"still-alive"});
  CHECK(std::get<protocol::pong_reply>(pong).request_id == std::optional<std::string>("still-alive"));
}

}  // namespace

TEST_CASE("malformed bodies, wrong types, missing fields and bad UTF-8 get INVALID_REQUEST", "[bad-input]") {
  test_worker w;
  test_client c(w.listen());

  c.send_body("\xc1");  // reserved msgpack byte
  CHECK(expect_error(c, protocol::error_code::invalid_request).message.find("malformed msgpack") == 0);
  c.send_body(std::string("\xdd\xff\xff\xff\xff", 5));  // array32 claiming 4G elements
  expect_error(c, protocol::error_code::invalid_request);
  c.send_body("not msgpack at all, just text");
  expect_error(c, protocol::error_code::invalid_request);
  c.send_body("");
  expect_error(c, protocol::error_code::invalid_request);

  c.send_body(raw_map({{"v", num(1)}, {"kind", str("submit")}, {"job_id", str("t-1")}, {"prompt", num(5)},
                       {"max_tokens", str("ten")}, {"temperature", str("hot")}}));
  auto e = expect_error(c, protocol::error_code::invalid_request);
  CHECK(e.job_id == std::optional<std::string>("t-1"));
  REQUIRE(e.fields.size() == 3);
  CHECK(e.fields[0].field == "prompt");

  c.send_body(raw_map({{"v", num(1)}, {"kind", str("submit")}}));
  e = expect_error(c, protocol::error_code::invalid_request);
  CHECK(e.fields.size() == 2);  // job_id and prompt

  c.send_body(raw_map({{"v", num(1)}, {"kind", str("submit")}, {"job_id", str("u-1")}, {"prompt", str("bad \xff utf8")}}));
  e = expect_error(c, protocol::error_code::invalid_request);
  REQUIRE(e.fields.size() == 1);
  CHECK(e.fields[0].field == "prompt");

  c.send_body(raw_map({{"v", num(1)}, {"kind", str("submit")}, {"job_id", str("h-1")}, {"prompt", str("x")},
                       {"max_tokens", num(1000000000)}}));
  e = expect_error(c, protocol::error_code::invalid_request);
  REQUIRE(e.fields.size() == 1);
  CHECK(e.fields[0].field == "max_tokens");
  expect_serving(c);
}

TEST_CASE("unknown kinds and versions get their own codes", "[bad-input]") {
  test_worker w;
  test_client c(w.listen());
  c.send_body(raw_map({{"v", num(1)}, {"kind", str("reboot")}, {"request_id", str("r-9")}}));
  CHECK(expect_error(c, protocol::error_code::unknown_kind).request_id == std::optional<std::string>("r-9"));
  c.send_body(raw_map({{"v", num(2)}, {"kind", str("submit")}, {"job_id", str("v2")}}));
  CHECK(expect_error(c, protocol::error_code::unsupported_version).job_id == std::optional<std::string>("v2"));
  c.send_body(raw_map({{"kind", str("ping")}}));
  expect_error(c, protocol::error_code::invalid_request);
  expect_serving(c);
}

TEST_CASE("frames of the wrong shape are refused", "[bad-input]") {
  test_worker w;
  test_client c(w.listen());
  const auto ping = protocol::encode(protocol::request{protocol::ping_request{}});
  c.send_frames({ping, ping});  // two bodies
  expect_error(c, protocol::error_code::invalid_request);
  c.send_frames({"not-empty", ping});  // a delimiter that is not empty
  expect_error(c, protocol::error_code::invalid_request);
  expect_serving(c);
}

TEST_CASE("oversized messages: MESSAGE_TOO_LARGE up to the socket limit, a dropped peer above it", "[bad-input]") {
  auto o = tiny_worker_options();
  o.sockets.limits.max_message_bytes = 64 * 1024;
  o.sockets.limits.socket_max_message_bytes = 256 * 1024;
  test_worker w(o);
  test_client c(w.listen(), "big-sender");
  const auto body = protocol::encode(protocol::request{prompt_job("big-1", std::string(100 * 1024, 'a'), 4, 1)});
  c.send_body(body);
  expect_error(c, protocol::error_code::message_too_large);

  // Above ZMQ_MAXMSGSIZE libzmq drops the connection before the worker sees anything.
  c.send_body(std::string(512 * 1024, 'x'));
  CHECK_FALSE(c.recv(500ms).has_value());
  test_client other(w.listen());
  expect_serving(other);
  // The dropped DEALER reconnects by itself and is served again.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  std::optional<protocol::reply> pong;
  while (!pong && std::chrono::steady_clock::now() < deadline) {
    c.send(protocol::ping_request{"back"});
    pong = c.recv(500ms);
  }
  REQUIRE(pong.has_value());
  CHECK(kind_of(*pong) == "pong");
}

TEST_CASE("prompts beyond the context are refused at the door with CONTEXT_OVERFLOW", "[bad-input]") {
  test_worker w;  // --ctx 512
  test_client c(w.listen());
  std::string long_prompt;
  for (int i = 0; i < 700; ++i) long_prompt += numbered(" word", i);
  c.send(prompt_job("ctx-1", long_prompt, 4, 1));
  auto e = expect_error(c, protocol::error_code::context_overflow);
  CHECK(e.job_id == std::optional<std::string>("ctx-1"));
  // Prompt fits, but not with max_tokens.
  c.send(prompt_job("ctx-2", "short prompt", 511, 1));  // 2 prompt tokens + 511 > 512
  expect_error(c, protocol::error_code::context_overflow);
  // An empty prompt has no tokens to start from.
  c.send(prompt_job("ctx-3", "", 4, 1));
  e = expect_error(c, protocol::error_code::invalid_request);
  REQUIRE(e.fields.size() == 1);
  CHECK(e.fields[0].field == "prompt");
  CHECK_FALSE(c.recv(300ms).has_value());  // refused at the door: no accepted, nothing else
  expect_serving(c);
}

TEST_CASE("a duplicate job id is refused and the running job still ends once", "[bad-input]") {
  test_worker w;
  test_client c(w.listen());
  c.send(prompt_job("dup", "First of its name", 6, 1));
  c.send(prompt_job("dup", "Second of its name", 6, 2));
  int terminals = 0, duplicates = 0;
  std::vector<std::string> kinds;
  while (terminals < 1 || duplicates < 1) {
    auto r = c.recv(20s);
    REQUIRE(r.has_value());
    if (const auto* e = std::get_if<protocol::error_reply>(&*r); e && e->code == protocol::error_code::duplicate_job) {
      ++duplicates;
      continue;
    }
    kinds.push_back(kind_of(*r));
    terminals += is_terminal(*r) ? 1 : 0;
  }
  CHECK(duplicates == 1);
  CHECK(kinds.front() == "accepted");
  CHECK(kinds.back() == "end");
  CHECK_FALSE(c.recv(300ms).has_value());
}

TEST_CASE("a full queue answers QUEUE_FULL (retriable)", "[bad-input][backpressure]") {
  auto o = tiny_worker_options();
  o.slots = 1;
  o.max_queue = 1;
  test_worker w(o);
  test_client c(w.listen());
  c.send(prompt_job("q-run", "Running", 400, 1));
  for (auto r = c.recv(10s); r && kind_of(*r) != "token"; r = c.recv(10s)) {
  }
  c.send(prompt_job("q-wait", "Waiting", 4, 2));
  c.send(prompt_job("q-over", "Overflow", 4, 3));
  bool refused = false;
  for (int i = 0; i < 50 && !refused; ++i) {
    auto r = c.recv(10s);
    REQUIRE(r.has_value());
    if (const auto* e = std::get_if<protocol::error_reply>(&*r)) {
      CHECK(e->job_id == std::optional<std::string>("q-over"));
      CHECK(e->code == protocol::error_code::queue_full);
      CHECK(e->retriable);
      refused = true;
    }
  }
  CHECK(refused);
  c.send(protocol::cancel_request{"q-run", std::nullopt});
  CHECK(kind_of(c.until_terminal("q-wait", 20s).back()) == "end");
}

TEST_CASE("a worker still loading answers NOT_READY and reports loading", "[bad-input]") {
  auto o = tiny_worker_options();
  o.await_subscriber = 3s;  // nobody subscribes: loading waits 3 s
  test_worker w(o, false);
  w.start();
  test_client c(w.listen());
  const auto s = std::get<protocol::status_report>(c.ask(protocol::status_request{}));
  CHECK(s.state == protocol::worker_state::loading);
  CHECK_FALSE(s.model.has_value());
  c.send(prompt_job("early", "Too early", 2, 1));
  auto e = expect_error(c, protocol::error_code::not_ready);
  CHECK(e.retriable);
  w.wait_ready();
}

TEST_CASE("random garbage never stops the worker", "[bad-input][fuzz]") {
  test_worker w;
  test_client c(w.listen());
  std::mt19937 rng(1234);
  for (int i = 0; i < 300; ++i) {
    std::string body(rng() % 64, '\0');
    for (auto& ch : body) ch = static_cast<char>(rng());
    if (i % 3 == 0 && !body.empty()) body[0] = static_cast<char>(0x80 | (rng() % 16));  // fixmap headers
    c.send_body(body);
    auto r = c.recv(5s);
    REQUIRE(r.has_value());
    CHECK(kind_of(*r) == "error");
  }
  expect_serving(c);
}

TEST_CASE("a model that cannot be loaded ends the worker with exit code 3 and a failed progress event", "[bad-input][load]") {
  const auto junk = std::filesystem::temp_directory_path() / "worker-orcd-not-a-model.gguf";
  {
    std::FILE* f = std::fopen(junk.c_str(), "wb");
    REQUIRE(f != nullptr);
    std::fputs("this is not a GGUF file", f);
    std::fclose(f);
  }
  auto o = tiny_worker_options();
  o.load.model = junk;
  o.await_subscriber = 5s;
  test_worker w(o, false);
  event_listener sub(w.events(), {"progress/", "narration/-/"});
  w.start();
  const auto events = sub.collect(20s, [](const protocol::event& e) {
    const auto* n = std::get_if<protocol::narration_event>(&e);
    return n != nullptr && n->action == "error";
  });
  bool failed_progress = false, error_narrated = false;
  for (const auto& [topic, e] : events) {
    if (const auto* p = std::get_if<protocol::progress_event>(&e)) failed_progress |= p->phase == protocol::load_phase::failed;
    if (const auto* n = std::get_if<protocol::narration_event>(&e); n && n->action == "error") {
      error_narrated = n->human.find("MODEL_LOAD_FAILED") != std::string::npos;
    }
  }
  CHECK(failed_progress);
  CHECK(error_narrated);
  CHECK(w.service().wait() == 3);
  std::filesystem::remove(junk);
}
