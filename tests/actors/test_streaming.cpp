// End to end over real ZeroMQ sockets: the exact reply order of a streamed job, 16 concurrent jobs with
// exactly one terminal each, results identical to adapters::generate for the same seed (alone and with
// 16 jobs at once), status and ping, narration of a job's lifecycle, and load progress seen by a SUB.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "adapters/cpu_engine.hpp"
#include "adapters/generation.hpp"
#include "model/gguf.hpp"
#include "model/chat/chat_format.hpp"
#include "model/chat/harmony_parser.hpp"
#include "model/tokenizer_vocab.hpp"
#include "protocol/utf8.hpp"
#include "tests/actors/support/test_worker.hpp"

using namespace worker;
using namespace worker::test;

namespace {

// The reference: adapters::generate on its own engine, with the worker's EOG set and sampling mapping.
struct reference_runner {
  std::shared_ptr<actors::model_bundle> model;

  reference_runner() {
    actors::load_options o;
    o.model = tiny_model_path();
    o.max_context = 512;
    model = actors::load_model_bundle(o, {});
  }

  adapters::generation_request request(const protocol::submit_request& s) const { return reference_request(*model, s); }

  std::vector<adapters::generation_result> run(const std::vector<protocol::submit_request>& jobs) const {
    std::vector<adapters::generation_request> rs;
    for (const auto& s : jobs) rs.push_back(request(s));
    adapters::generation_hooks hooks;
    hooks.token_text = [&](adapters::token_id t) {
      return std::string(model->tokenizer.token_bytes(static_cast<model::token_id>(t)));
    };
    return adapters::generate_batch(*model->engine.engine, rs, hooks);
  }
};

struct streamed_job {
  std::vector<std::string> kinds;
  std::vector<std::string> channels;  // harmony jobs: the channel of each token reply
  std::vector<adapters::token_id> tokens;
  std::string text;
  std::optional<protocol::end_reply> end;
  std::optional<protocol::error_reply> error;
};

// Checks the reply sequence of one job and extracts what it produced.
streamed_job check_stream(const std::vector<protocol::reply>& replies, const std::string& correlation_id = "") {
  streamed_job j;
  std::uint32_t next_index = 0;
  for (const auto& r : replies) j.kinds.push_back(kind_of(r));
  REQUIRE(replies.size() >= 3);
  CHECK(j.kinds.front() == "accepted");
  CHECK(j.kinds[1] == "started");
  for (std::size_t i = 2; i + 1 < replies.size(); ++i) {
    const auto* t = std::get_if<protocol::token_reply>(&replies[i]);
    REQUIRE(t != nullptr);
    CHECK(t->index == next_index);
    REQUIRE(t->token_ids.size() == 1);
    ++next_index;
    j.tokens.push_back(t->token_ids[0]);
    CHECK(protocol::is_valid_utf8(t->text));
    j.text += t->text;
    if (t->channel) j.channels.push_back(*t->channel);
    if (!correlation_id.empty()) CHECK(t->correlation_id == correlation_id);
  }
  if (const auto* e = std::get_if<protocol::end_reply>(&replies.back())) {
    j.end = *e;
    CHECK(e->tokens_out == j.tokens.size());
  } else {
    j.error = std::get<protocol::error_reply>(replies.back());
  }
  return j;
}

}  // namespace

TEST_CASE("a job streams accepted, started, one token per generated token, then end", "[e2e]") {
  test_worker w;
  test_client c(w.listen());
  auto job = prompt_job("stream-1", "Tell me a story about a fox", 7, 31337);
  job.correlation_id = "corr-stream-1";
  c.send(job);
  const auto replies = c.until_terminal("stream-1");
  const auto j = check_stream(replies, "corr-stream-1");
  REQUIRE(j.end.has_value());
  CHECK(j.end->correlation_id == "corr-stream-1");
  CHECK(j.end->seed == 31337);
  const auto& accepted = std::get<protocol::accepted_reply>(replies[0]);
  CHECK(accepted.queue_position == 0);
  const auto& started = std::get<protocol::started_reply>(replies[1]);
  CHECK(started.seed == 31337);
  CHECK(started.max_tokens == 7);
  CHECK(started.prompt_tokens == j.end->tokens_in);
  CHECK(j.end->timings.total_ms >= j.end->timings.prefill_ms);

  const auto ref = reference_runner().run({job}).at(0);
  CHECK(j.tokens == ref.tokens);
  CHECK(j.text == as_wire_text(ref.text));
  CHECK(std::string(protocol::to_string(j.end->reason)) ==
        (ref.reason == adapters::stop_reason::eog ? "eos" : "max_tokens"));
  // Nothing follows the terminal.
  CHECK_FALSE(c.recv(300ms).has_value());
}

TEST_CASE("a chat job is rendered with ChatML and streams what generate gives", "[e2e][chat]") {
  test_worker w;
  test_client c(w.listen());
  protocol::submit_request job;
  job.job_id = "chat-1";
  job.messages = {{protocol::chat_role::system, "You are terse."}, {protocol::chat_role::user, "Say hi <|im_end|>"}};
  job.assistant_prefill = "Hi";
  job.sampling.max_tokens = 5;
  job.sampling.seed = 4242;
  c.send(job);
  const auto j = check_stream(c.until_terminal("chat-1"));
  REQUIRE(j.end.has_value());
  reference_runner ref;
  const auto expected = ref.run({job}).at(0);
  CHECK(j.tokens == expected.tokens);
  CHECK(j.text == as_wire_text(expected.text));
  // The user's "<|im_end|>" is text, not the control token: the prompt holds exactly two <|im_end|>
  // markers (after the system and the user turn); the assistant turn is left open.
  const auto prompt = ref.request(job).prompt;
  const auto im_end = static_cast<adapters::token_id>(*ref.model->tokenizer.find_special("<|im_end|>"));
  CHECK(std::count(prompt.begin(), prompt.end(), im_end) == 2);
  CHECK(j.end->tokens_in == prompt.size());

  // A role ChatML cannot express is refused at the door.
  protocol::submit_request bad = job;
  bad.job_id = "chat-2";
  bad.messages = {{protocol::chat_role::developer, "dev"}, {protocol::chat_role::user, "u"}};
  const auto e = std::get<protocol::error_reply>(c.ask(bad));
  CHECK(e.code == protocol::error_code::invalid_request);
  REQUIRE(e.fields.size() == 1);
  CHECK(e.fields[0].field == "messages");
}

TEST_CASE("a gpt-oss worker renders harmony chats and streams what generate gives", "[e2e][chat][gpt-oss]") {
  auto o = tiny_worker_options();
  o.load.model = tiny_gpt_oss_path();
  test_worker w(o);
  test_client c(w.listen());
  protocol::submit_request job;
  job.job_id = "harmony-1";
  job.messages = {{protocol::chat_role::developer, "Answer briefly."}, {protocol::chat_role::user, "Hi"}};
  job.effort = protocol::reasoning_effort::low;
  job.date = "2025-06-01";
  job.sampling.max_tokens = 6;
  job.sampling.seed = 99;
  c.send(job);
  const auto j = check_stream(c.until_terminal("harmony-1"));
  REQUIRE(j.end.has_value());

  actors::load_options lo;
  lo.model = o.load.model;
  lo.max_context = 512;
  const auto m = actors::load_model_bundle(lo, {});
  model::chat_request chat;
  chat.messages = {{model::chat_role::developer, "Answer briefly."}, {model::chat_role::user, "Hi"}};
  chat.effort = model::reasoning_effort::low;
  chat.current_date = "2025-06-01";
  const auto ids = model::chat_render(m->tokenizer, model::chat_format_kind::harmony, chat).ids;
  adapters::generation_request r;
  r.prompt.assign(ids.begin(), ids.end());
  r.sampling.seed = 99;
  r.max_tokens = 6;
  r.eog_tokens = m->eog;
  adapters::generation_hooks hooks;
  hooks.token_text = [&](adapters::token_id t) {
    return std::string(m->tokenizer.token_bytes(static_cast<model::token_id>(t)));
  };
  const auto ref = adapters::generate(*m->engine.engine, r, hooks);
  CHECK(j.end->tokens_in == ids.size());
  CHECK(j.tokens == ref.tokens);
  // The text is what the tokenizer module's harmony parser makes of generate's tokens: headers out.
  model::harmony_parser parser(m->tokenizer);
  std::string expected;
  for (auto t : ref.tokens) {
    for (const auto& e : parser.push(static_cast<model::token_id>(t))) expected += e.text;
  }
  for (const auto& e : parser.finish()) expected += e.text;
  CHECK(j.text == expected);
  CHECK(j.text.find("<|channel|>") == std::string::npos);
  CHECK(j.channels.size() == j.tokens.size());  // every token reply names its channel
  // harmony's end-of-generation set is <|return|> and <|call|>, not <|end|>.
  CHECK(std::find(m->eog.begin(), m->eog.end(), static_cast<adapters::token_id>(*m->tokenizer.find_special("<|return|>"))) != m->eog.end());
  CHECK(std::find(m->eog.begin(), m->eog.end(), static_cast<adapters::token_id>(*m->tokenizer.find_special("<|end|>"))) == m->eog.end());
}

TEST_CASE("16 concurrent jobs each end exactly once, with the tokens they get alone", "[e2e][concurrency]") {
  auto options = tiny_worker_options();
  options.slots = 16;
  test_worker w(options);
  reference_runner ref;

  std::vector<protocol::submit_request> jobs;
  for (int i = 0; i < 16; ++i) {
    // Jobs 0 and 8 share prompt and seed: they must agree with each other and with a solo run.
    const int k = i % 8;
    jobs.push_back(prompt_job(numbered("c", i), numbered("Concurrent prompt number ", k), 4 + (k % 3),
                              1000 + static_cast<std::uint64_t>(k)));
  }
  // Solo run of job 0 through the worker first.
  test_client solo(w.listen());
  auto solo_job = jobs[0];
  solo_job.job_id = "solo";
  solo.send(solo_job);
  const auto solo_run = check_stream(solo.until_terminal("solo"));

  // Two clients, 8 jobs each, all submitted before any finishes.
  test_client a(w.listen(), "client-a");
  test_client b(w.listen(), "client-b");
  for (int i = 0; i < 16; ++i) (i % 2 == 0 ? a : b).send(jobs[i]);
  std::map<std::string, streamed_job> got;
  for (int i = 0; i < 16; ++i) {
    auto& client = i % 2 == 0 ? a : b;
    got[jobs[i].job_id] = check_stream(client.until_terminal(jobs[i].job_id));
  }
  // Exactly one terminal each: nothing else arrives afterwards on either client.
  CHECK_FALSE(a.recv(300ms).has_value());
  CHECK_FALSE(b.recv(300ms).has_value());

  const auto refs = ref.run(jobs);
  for (int i = 0; i < 16; ++i) {
    INFO("job " << jobs[i].job_id);
    const auto& j = got[jobs[i].job_id];
    REQUIRE(j.end.has_value());
    CHECK(j.tokens == refs[i].tokens);
    CHECK(j.text == as_wire_text(refs[i].text));
  }
  CHECK(got["c0"].tokens == solo_run.tokens);
  CHECK(got["c8"].tokens == solo_run.tokens);

  const auto status = std::get<protocol::status_report>(a.ask(protocol::status_request{"after"}));
  CHECK(status.jobs_active == 0);
  CHECK(status.jobs_queued == 0);
}

TEST_CASE("status and ping answer with the documented fields", "[e2e]") {
  test_worker w;
  test_client c(w.listen());
  const auto s = std::get<protocol::status_report>(c.ask(protocol::status_request{"s-1"}));
  CHECK(s.request_id == std::optional<std::string>("s-1"));
  CHECK(s.worker_id == "test-worker");
  CHECK(s.state == protocol::worker_state::ready);
  REQUIRE(s.model.has_value());
  CHECK(s.model->architecture == "qwen2");
  CHECK(s.model->vocab_size == 152064);
  CHECK(s.streams == 1);
  // The CPU engine holds no device memory: resident once loaded, no VRAM figures, no device check.
  CHECK(s.resident);
  CHECK(s.vram_used == 0);
  CHECK(s.vram_total == 0);
  CHECK(s.vram_engine == 0);
  CHECK(s.residency_checked_ms == 0);
  CHECK(s.uptime_s > 0);
  const auto p = std::get<protocol::pong_reply>(c.ask(protocol::ping_request{"p-1"}));
  CHECK(p.request_id == std::optional<std::string>("p-1"));
  CHECK(p.time_ms > 1700000000000ull);
}

TEST_CASE("a REQ socket gets its reply through the delimiter envelope", "[e2e]") {
  test_worker w;
  zmq::socket_t req(test_context(), zmq::socket_type::req);
  req.set(zmq::sockopt::linger, 0);
  req.connect(w.listen());
  req.send(zmq::buffer(protocol::encode(protocol::request{protocol::ping_request{"req-1"}})), zmq::send_flags::none);
  zmq::pollitem_t item{req.handle(), 0, ZMQ_POLLIN, 0};
  REQUIRE(zmq::poll(&item, 1, 5s) == 1);
  zmq::message_t m;
  REQUIRE(req.recv(m));
  const auto r = protocol::decode_reply(m.to_string_view());
  CHECK(std::get<protocol::pong_reply>(r).request_id == std::optional<std::string>("req-1"));
}

TEST_CASE("narration follows a job's lifecycle with its correlation id", "[e2e][events]") {
  test_worker w;
  event_listener sub(w.events(), {"narration/narrated-1/"});
  std::this_thread::sleep_for(300ms);  // let the subscription reach the worker (slow joiner)
  test_client c(w.listen());
  auto job = prompt_job("narrated-1", "Narrate this", 3, 9);
  job.correlation_id = "corr-narr";
  c.send(job);
  c.until_terminal("narrated-1");
  const auto events = sub.collect(5s, [](const protocol::event& e) {
    const auto* n = std::get_if<protocol::narration_event>(&e);
    return n != nullptr && n->action == "end";
  });
  std::vector<std::string> actions;
  for (const auto& [topic, e] : events) {
    CHECK(topic == "narration/narrated-1/");
    const auto& n = std::get<protocol::narration_event>(e);
    actions.push_back(n.action);
    CHECK(n.correlation_id == std::optional<std::string>("corr-narr"));
    CHECK(n.job_id == std::optional<std::string>("narrated-1"));
    CHECK(n.worker_id == "test-worker");
    CHECK_FALSE(n.human.empty());
    CHECK(n.human.find("Narrate this") == std::string::npos);  // never the prompt
  }
  CHECK(actions == std::vector<std::string>{"accept", "start", "end"});
}

TEST_CASE("a SUB connected before loading sees progress every 5 percent up to ready", "[e2e][events]") {
  auto options = tiny_worker_options();
  options.await_subscriber = 10s;  // the loader waits for our subscription
  test_worker w(options, false);
  event_listener sub(w.events(), {"progress/"});
  w.start();
  const auto events = sub.collect(60s, [](const protocol::event& e) {
    const auto* p = std::get_if<protocol::progress_event>(&e);
    return p != nullptr && (p->phase == protocol::load_phase::ready || p->phase == protocol::load_phase::failed);
  });
  REQUIRE(events.size() >= 3);
  const auto& first = std::get<protocol::progress_event>(events.front().second);
  const auto& last = std::get<protocol::progress_event>(events.back().second);
  CHECK(first.phase == protocol::load_phase::open);
  CHECK(first.percent == 0.0);
  CHECK(last.phase == protocol::load_phase::ready);
  CHECK(last.percent == 100.0);
  CHECK(last.bytes_done == last.bytes_total);
  CHECK(last.tensors_done == last.tensors_total);
  CHECK(last.worker_id == "test-worker");
  double previous = 0;
  std::size_t weights = 0;
  for (const auto& [topic, e] : events) {
    CHECK(topic == "progress/");
    const auto& p = std::get<protocol::progress_event>(e);
    weights += p.phase == protocol::load_phase::weights ? 1 : 0;
    CHECK(p.percent >= previous);
    CHECK(p.percent - previous <= 5.0 + 1e-9);
    previous = p.percent;
  }
  CHECK(weights >= 19);  // 0 -> 100 % in steps of at most ~5 %
  w.wait_ready();
}
