// Encoding and client-side decoding of every message kind: what the worker writes is what a client
// reads, field by field; error codes keep their stable spelling; event topics follow §5.
#include <catch2/catch.hpp>

#include <msgpack.hpp>

#include "protocol/codec.hpp"

using namespace worker::protocol;

namespace {

template <class T>
T roundtrip_reply(const T& in) {
  const auto r = decode_reply(encode(reply{in}));
  REQUIRE(std::holds_alternative<T>(r));
  return std::get<T>(r);
}

// The raw msgpack map of a body, for checks on the exact keys on the wire.
msgpack::object_handle raw(const std::string& body) { return msgpack::unpack(body.data(), body.size()); }

bool has_key(const msgpack::object& map, std::string_view key, msgpack::type::object_type type) {
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const auto& kv = map.via.map.ptr[i];
    if (std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) return kv.val.type == type;
  }
  return false;
}

}  // namespace

TEST_CASE("error codes keep their stable wire spelling", "[codec]") {
  const std::vector<std::pair<error_code, std::string_view>> expected = {
      {error_code::invalid_request, "INVALID_REQUEST"},     {error_code::unsupported_version, "UNSUPPORTED_VERSION"},
      {error_code::unknown_kind, "UNKNOWN_KIND"},           {error_code::message_too_large, "MESSAGE_TOO_LARGE"},
      {error_code::duplicate_job, "DUPLICATE_JOB"},         {error_code::context_overflow, "CONTEXT_OVERFLOW"},
      {error_code::queue_full, "QUEUE_FULL"},               {error_code::shutting_down, "SHUTTING_DOWN"},
      {error_code::not_ready, "NOT_READY"},
      {error_code::cancelled, "CANCELLED"},                 {error_code::deadline_exceeded, "DEADLINE_EXCEEDED"},
      {error_code::vram_oom, "VRAM_OOM"},                   {error_code::insufficient_vram, "INSUFFICIENT_VRAM"},
      {error_code::model_load_failed, "MODEL_LOAD_FAILED"}, {error_code::cuda_error, "CUDA_ERROR"},
      {error_code::internal, "INTERNAL"}};
  for (const auto& [code, name] : expected) {
    CHECK(to_string(code) == name);
    CHECK(error_code_from_string(name) == code);
  }
  CHECK_FALSE(error_code_from_string("OOM").has_value());
  CHECK(is_retriable(error_code::queue_full));
  CHECK(is_retriable(error_code::vram_oom));
  CHECK(is_retriable(error_code::not_ready));
  CHECK_FALSE(is_retriable(error_code::invalid_request));
  CHECK_FALSE(is_retriable(error_code::cancelled));
}

TEST_CASE("a client's encoded submit is what the worker decodes", "[codec]") {
  submit_request s;
  s.job_id = "job-7";
  s.messages = {{chat_role::system, "sys"}, {chat_role::user, "hello \xe4\xbd\xa0"}};
  s.effort = reasoning_effort::low;
  s.date = "2025-01-02";
  s.sampling.max_tokens = 9;
  s.sampling.temperature = 0.5f;
  s.sampling.top_k = 3;
  s.sampling.top_p = 0.75f;
  s.sampling.seed = 77;
  s.sampling.stop = {"END"};
  s.correlation_id = "c-7";
  s.deadline_ms = 1234;
  const auto r = decode_request(encode(request{s}));
  REQUIRE(std::holds_alternative<request>(r));
  const auto& d = std::get<submit_request>(std::get<request>(r));
  CHECK(d.job_id == s.job_id);
  REQUIRE(d.messages.size() == 2);
  CHECK(d.messages[1].content == s.messages[1].content);
  CHECK(d.messages[0].role == chat_role::system);
  CHECK(d.effort == reasoning_effort::low);
  CHECK(d.date == s.date);
  CHECK(d.sampling.max_tokens == 9);
  CHECK(d.sampling.temperature == 0.5f);
  CHECK(d.sampling.top_k == 3);
  CHECK(d.sampling.top_p == 0.75f);
  CHECK(d.sampling.seed == std::optional<std::uint64_t>(77));
  CHECK(d.sampling.stop == s.sampling.stop);
  CHECK(d.correlation_id == s.correlation_id);
  CHECK(d.deadline_ms == s.deadline_ms);
}

TEST_CASE("job replies round-trip field by field", "[codec]") {
  const auto a = roundtrip_reply(accepted_reply{"j", "c", 3});
  CHECK((a.job_id == "j" && a.correlation_id == "c" && a.queue_position == 3));

  const auto s = roundtrip_reply(started_reply{"j", "c", 17, 32, 0xfedcba9876543210ull, 1});
  CHECK((s.prompt_tokens == 17 && s.max_tokens == 32 && s.seed == 0xfedcba9876543210ull && s.stream == 1));

  const auto t = roundtrip_reply(token_reply{"j", "c", 5, {151643, 0, 12}, "caf\xc3\xa9", std::nullopt});
  CHECK(t.index == 5);
  CHECK(t.token_ids == std::vector<std::int32_t>{151643, 0, 12});
  CHECK(t.text == "caf\xc3\xa9");
  CHECK_FALSE(t.channel.has_value());
  const auto h = roundtrip_reply(token_reply{"j", "c", 6, {1}, "thinking", std::string("analysis")});
  CHECK(h.channel == std::optional<std::string>("analysis"));

  end_reply e{"j", "c", stop_reason::stop_sequence, "STOP", 4, 6, 99, {1.5, 2.5, 3.5, 7.5, 1714.25}};
  const auto e2 = roundtrip_reply(e);
  CHECK(e2.reason == stop_reason::stop_sequence);
  CHECK(e2.stop_sequence == std::optional<std::string>("STOP"));
  CHECK((e2.tokens_in == 4 && e2.tokens_out == 6 && e2.seed == 99));
  CHECK(e2.timings.total_ms == 7.5);
  CHECK(e2.timings.decode_tokens_per_s == 1714.25);

  // stop_sequence is only on the wire when the reason is stop_sequence.
  e.reason = stop_reason::eos;
  const auto body = encode(reply{e});
  const auto oh = raw(body);
  CHECK_FALSE(has_key(oh.get(), "stop_sequence", msgpack::type::STR));
  CHECK_FALSE(roundtrip_reply(e).stop_sequence.has_value());
}

TEST_CASE("error replies carry nil ids when the request had none", "[codec]") {
  auto err = make_error(error_code::invalid_request, "bad");
  err.fields = {{"top_p", "must be in (0, 1]"}, {"stop[0]", "must be 1-128 bytes"}};
  const auto body = encode(reply{err});
  const auto oh = raw(body);
  CHECK(has_key(oh.get(), "job_id", msgpack::type::NIL));
  CHECK(has_key(oh.get(), "correlation_id", msgpack::type::NIL));
  CHECK(has_key(oh.get(), "code", msgpack::type::STR));
  const auto d = roundtrip_reply(err);
  CHECK(d.code == error_code::invalid_request);
  CHECK_FALSE(d.job_id.has_value());
  CHECK(d.fields == err.fields);
  CHECK(d.retriable == false);

  auto full = make_error(error_code::queue_full, "queue full");
  full.job_id = "j";
  full.correlation_id = "c";
  const auto d2 = roundtrip_reply(full);
  CHECK(d2.retriable);
  CHECK(d2.job_id == std::optional<std::string>("j"));
}

TEST_CASE("cancel_ack, status and pong round-trip", "[codec]") {
  const auto c = roundtrip_reply(cancel_ack{"j", "r", cancel_state::finished});
  CHECK((c.state == cancel_state::finished && c.request_id == std::optional<std::string>("r")));

  status_report st;
  st.worker_id = "w0";
  st.version = "0.1.0";
  st.state = worker_state::ready;
  st.model = model_info{"tiny", "qwen2", "Q8_0", 151936, 4096, 12345};
  st.device = "cpu";
  st.resident = true;
  st.jobs_active = 2;
  st.jobs_queued = 5;
  st.streams = 1;
  st.uptime_s = 1.25;
  const auto s = roundtrip_reply(st);
  REQUIRE(s.model.has_value());
  CHECK(s.model->architecture == "qwen2");
  CHECK(s.model->vocab_size == 151936);
  CHECK((s.jobs_active == 2 && s.jobs_queued == 5 && s.resident && s.uptime_s == 1.25));
  st.model.reset();
  st.state = worker_state::loading;
  CHECK_FALSE(roundtrip_reply(st).model.has_value());

  const auto p = roundtrip_reply(pong_reply{std::nullopt, "w0", 1700000000000ull});
  CHECK((p.worker_id == "w0" && p.time_ms == 1700000000000ull && !p.request_id));
}

TEST_CASE("events round-trip and carry their topics", "[codec][events]") {
  progress_event p{"w0", load_phase::weights, 50, 100, 3, 7, 50.0, 12.5, 40.0};
  const auto pe = decode_event(encode(event{p}));
  const auto& p2 = std::get<progress_event>(pe);
  CHECK((p2.phase == load_phase::weights && p2.bytes_done == 50 && p2.tensors_total == 7 && p2.percent == 50.0));
  CHECK(event_topic(event{p}) == "progress/");

  narration_event n;
  n.worker_id = "w0";
  n.actor = "session";
  n.action = "end";
  n.target = "job-1";
  n.human = "job-1 finished";
  n.job_id = "job-1";
  n.correlation_id = "c";
  n.time_ms = 5;
  n.fields = {{"tokens_out", std::int64_t{12}}, {"ok", true}, {"ms", 1.5}, {"reason", std::string("eos")}};
  const auto ne = std::get<narration_event>(decode_event(encode(event{n})));
  CHECK(ne.fields == n.fields);
  CHECK(ne.job_id == n.job_id);
  CHECK(event_topic(event{n}) == "narration/job-1/");
  n.job_id.reset();
  CHECK(event_topic(event{n}) == "narration/-/");
  CHECK(event_topic(event{status_report{}}) == "status/");
}

TEST_CASE("client-side decoding rejects bodies that break the protocol", "[codec]") {
  CHECK_THROWS_AS(decode_reply("\xc1"), protocol_error);
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_map(2);
  pk.pack(std::string("v"));
  pk.pack(1);
  pk.pack(std::string("kind"));
  pk.pack(std::string("accepted"));  // no job_id
  CHECK_THROWS_WITH(decode_reply(std::string(buf.data(), buf.size())), Catch::Contains("missing field job_id"));
}
