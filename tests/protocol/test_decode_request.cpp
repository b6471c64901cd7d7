// decode_request: every rule of docs/protocol.md §2-§3 on the worker side. Hostile bodies never throw;
// each gets its typed error, and validation lists every bad field at once.
#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>

#include "protocol/codec.hpp"
#include "tests/protocol/msgpack_builder.hpp"

using namespace worker::protocol;
namespace mp = test_msgpack;

namespace {

mp::entries base_submit() {
  return {{"v", 1}, {"kind", "submit"}, {"job_id", "job-1"}, {"prompt", "Once upon a time"}};
}

decode_result decode(const mp::value& v, const limits& lim = {}) { return decode_request(mp::encode(v), lim); }

// By value: callers pass temporaries.
error_reply as_error(const decode_result& r) {
  REQUIRE(std::holds_alternative<error_reply>(r));
  return std::get<error_reply>(r);
}

submit_request as_submit(const decode_result& r) {
  if (const auto* e = std::get_if<error_reply>(&r)) FAIL("unexpected error: " << e->message);
  REQUIRE(std::holds_alternative<submit_request>(std::get<request>(r)));
  return std::get<submit_request>(std::get<request>(r));
}

std::vector<std::string> field_names(const error_reply& e) {
  std::vector<std::string> names;
  for (const auto& f : e.fields) names.push_back(f.field);
  std::sort(names.begin(), names.end());
  return names;
}

// Submit with one field replaced (or added), expecting INVALID_REQUEST on exactly that field.
void expect_bad_field(const std::string& key, mp::value v, const std::string& field_expected) {
  auto e = base_submit();
  e.emplace_back(key, std::move(v));
  const auto& err = as_error(decode(mp::map(e)));
  INFO("field " << key << ": " << err.message);
  CHECK(err.code == error_code::invalid_request);
  CHECK(err.retriable == false);
  CHECK(field_names(err) == std::vector<std::string>{field_expected});
  CHECK(err.job_id == std::optional<std::string>("job-1"));  // a valid job_id is echoed
}

}  // namespace

TEST_CASE("a minimal submit decodes with the documented defaults", "[decode]") {
  const auto& s = as_submit(decode(mp::map(base_submit())));
  CHECK(s.job_id == "job-1");
  CHECK(s.prompt == std::optional<std::string>("Once upon a time"));
  CHECK(s.messages.empty());
  CHECK(s.sampling.max_tokens == 256);
  CHECK(s.sampling.temperature == 1.0f);
  CHECK(s.sampling.top_k == 0);
  CHECK(s.sampling.top_p == 1.0f);
  CHECK(s.sampling.min_p == 0.0f);
  CHECK(s.sampling.repetition_penalty == 1.0f);
  CHECK_FALSE(s.sampling.seed.has_value());
  CHECK(s.sampling.stop.empty());
  CHECK_FALSE(s.correlation_id.has_value());
  CHECK_FALSE(s.deadline_ms.has_value());
  CHECK(s.effort == reasoning_effort::medium);
}

TEST_CASE("a full chat submit keeps every field", "[decode]") {
  const auto& s = as_submit(decode(mp::map({
      {"v", 1}, {"kind", "submit"}, {"job_id", "A.b_c:d-9"},
      {"messages", mp::array{mp::map({{"role", "system"}, {"content", "Be brief."}}),
                             mp::map({{"role", "user"}, {"content", "Hi \xf0\x9f\x9a\x80"}})}},
      {"reasoning_effort", "high"}, {"date", "2025-11-27"}, {"assistant_prefill", "Sure"},
      {"max_tokens", 12}, {"temperature", 0.0}, {"top_k", 40}, {"top_p", 0.9}, {"min_p", 0.05},
      {"repetition_penalty", 1.1}, {"presence_penalty", -0.5}, {"frequency_penalty", 2},
      {"seed", std::uint64_t{18446744073709551615ull}}, {"stop", mp::array{"\n\n", "User:"}},
      {"correlation_id", "corr-1"}, {"deadline_ms", 2500},
      {"some_future_field", mp::map({{"x", 1}})},  // unknown fields are ignored
  })));
  CHECK(s.job_id == "A.b_c:d-9");
  CHECK_FALSE(s.prompt.has_value());
  REQUIRE(s.messages.size() == 2);
  CHECK(s.messages[0].role == chat_role::system);
  CHECK(s.messages[1].content == "Hi \xf0\x9f\x9a\x80");
  CHECK(s.effort == reasoning_effort::high);
  CHECK(s.assistant_prefill == std::optional<std::string>("Sure"));
  CHECK(s.date == std::optional<std::string>("2025-11-27"));
  CHECK(s.sampling.max_tokens == 12);
  CHECK(s.sampling.temperature == 0.0f);
  CHECK(s.sampling.top_k == 40);
  CHECK(s.sampling.top_p == Approx(0.9f));
  CHECK(s.sampling.min_p == Approx(0.05f));
  CHECK(s.sampling.repetition_penalty == Approx(1.1f));
  CHECK(s.sampling.presence_penalty == Approx(-0.5f));
  CHECK(s.sampling.frequency_penalty == 2.0f);
  CHECK(s.sampling.seed == std::optional<std::uint64_t>(18446744073709551615ull));
  CHECK(s.sampling.stop == std::vector<std::string>{"\n\n", "User:"});
  CHECK(s.correlation_id == std::optional<std::string>("corr-1"));
  CHECK(s.deadline_ms == std::optional<std::uint64_t>(2500));
}

TEST_CASE("nil counts as absent for optional fields", "[decode]") {
  auto e = base_submit();
  e.emplace_back("seed", mp::nil_t{});
  e.emplace_back("stop", mp::nil_t{});
  const auto& s = as_submit(decode(mp::map(e)));
  CHECK_FALSE(s.sampling.seed.has_value());
}

TEST_CASE("every bad field is listed at once", "[decode][validation]") {
  const auto& err = as_error(decode(mp::map({
      {"v", 1}, {"kind", "submit"}, {"job_id", "job/with/slash"},
      {"messages", mp::array{mp::map({{"role", "robot"}, {"content", "hi"}}), mp::map({{"content", 5}})}},
      {"temperature", "hot"}, {"top_p", 2.0}, {"max_tokens", 0}, {"stop", mp::array{"ok", ""}},
      {"deadline_ms", -5}, {"correlation_id", "has space"},
  })));
  CHECK(err.code == error_code::invalid_request);
  CHECK(field_names(err) == std::vector<std::string>{"correlation_id", "deadline_ms", "job_id", "max_tokens",
                                                     "messages[0].role", "messages[1].content",
                                                     "messages[1].role", "stop[1]", "temperature", "top_p"});
  CHECK_FALSE(err.job_id.has_value());  // an invalid job_id is not echoed
  CHECK(err.message.find("10 invalid field(s)") == 0);
}

TEST_CASE("wrong types are named per field", "[decode][validation]") {
  expect_bad_field("max_tokens", "12", "max_tokens");
  expect_bad_field("max_tokens", 1.5, "max_tokens");
  expect_bad_field("seed", -1, "seed");
  expect_bad_field("temperature", true, "temperature");
  expect_bad_field("top_k", mp::array{}, "top_k");
  expect_bad_field("stop", "not-an-array", "stop");
  expect_bad_field("stop", mp::array{1}, "stop[0]");
  expect_bad_field("reasoning_effort", "extreme", "reasoning_effort");
  expect_bad_field("date", "27/11/2025", "date");
  expect_bad_field("correlation_id", 42, "correlation_id");
  expect_bad_field("assistant_prefill", "only for chat", "assistant_prefill");  // base_submit has a prompt
}

TEST_CASE("ranges are enforced on every sampling field", "[decode][validation]") {
  expect_bad_field("max_tokens", 16385, "max_tokens");                          // huge max_tokens
  expect_bad_field("max_tokens", std::uint64_t{1} << 40, "max_tokens");
  expect_bad_field("temperature", 2.5, "temperature");
  expect_bad_field("temperature", -0.1, "temperature");
  expect_bad_field("top_p", 0.0, "top_p");
  expect_bad_field("min_p", 1.5, "min_p");
  expect_bad_field("repetition_penalty", 0.0, "repetition_penalty");
  expect_bad_field("presence_penalty", 3, "presence_penalty");
  expect_bad_field("frequency_penalty", -2.5, "frequency_penalty");
  expect_bad_field("top_k", 1000001, "top_k");
  expect_bad_field("deadline_ms", 0, "deadline_ms");
  expect_bad_field("temperature", std::numeric_limits<double>::quiet_NaN(), "temperature");
  expect_bad_field("top_p", std::numeric_limits<double>::infinity(), "top_p");
  expect_bad_field("stop", mp::array{"a", "b", "c", "d", "e", "f", "g", "h", "i"}, "stop");
  expect_bad_field("stop", mp::array{std::string(129, 'x')}, "stop[0]");
}

TEST_CASE("missing required fields are reported", "[decode][validation]") {
  SECTION("no job_id and no prompt") {
    const auto& err = as_error(decode(mp::map({{"v", 1}, {"kind", "submit"}})));
    CHECK(field_names(err) == std::vector<std::string>{"job_id", "prompt"});
  }
  SECTION("prompt and messages together") {
    auto e = base_submit();
    e.emplace_back("messages", mp::array{mp::map({{"role", "user"}, {"content", "x"}})});
    CHECK(field_names(as_error(decode(mp::map(e)))) == std::vector<std::string>{"prompt"});
  }
  SECTION("empty messages") {
    const auto& err = as_error(decode(mp::map({{"v", 1}, {"kind", "submit"}, {"job_id", "j"}, {"messages", mp::array{}}})));
    CHECK(field_names(err) == std::vector<std::string>{"messages"});
  }
  SECTION("cancel without job_id") {
    const auto& err = as_error(decode(mp::map({{"v", 1}, {"kind", "cancel"}, {"request_id", "r-1"}})));
    CHECK(err.code == error_code::invalid_request);
    CHECK(field_names(err) == std::vector<std::string>{"job_id"});
    CHECK(err.request_id == std::optional<std::string>("r-1"));  // echoed so the client can match it
  }
}


TEST_CASE("invalid UTF-8 and bin are rejected per field", "[decode][validation]") {
  auto with_prompt = [](mp::value p) {
    return mp::map({{"v", 1}, {"kind", "submit"}, {"job_id", "j"}, {"prompt", std::move(p)}});
  };
  auto err = as_error(decode(with_prompt("bad \xc3\x28 utf8")));
  CHECK(field_names(err) == std::vector<std::string>{"prompt"});
  CHECK(err.fields[0].problem == "is not valid UTF-8 (byte 4)");
  err = as_error(decode(with_prompt("overlong \xc0\x80")));
  CHECK(field_names(err) == std::vector<std::string>{"prompt"});
  err = as_error(decode(with_prompt(mp::bin_t{"raw bytes"})));
  CHECK(err.fields.at(0).problem == "must be a string");
  err = as_error(decode(mp::map({{"v", 1}, {"kind", "submit"}, {"job_id", "j"},
                                 {"messages", mp::array{mp::map({{"role", "user"}, {"content", "\xed\xa0\x80"}})}}})));
  CHECK(field_names(err) == std::vector<std::string>{"messages[0].content"});
  err = as_error(decode(mp::map({{"v", 1}, {"kind", "submit"}, {"job_id", "j"}, {"prompt", "x"},
                                 {"stop", mp::array{"\xff"}}})));
  CHECK(field_names(err) == std::vector<std::string>{"stop[0]"});
}

TEST_CASE("prompt size limits are enforced", "[decode][validation]") {
  limits lim;
  lim.max_prompt_bytes = 100;
  auto err = as_error(decode(mp::map({{"v", 1}, {"kind", "submit"}, {"job_id", "j"}, {"prompt", std::string(101, 'a')}}), lim));
  CHECK(field_names(err) == std::vector<std::string>{"prompt"});
  // The sum of message contents counts, even when each message is small enough.
  err = as_error(decode(mp::map({{"v", 1}, {"kind", "submit"}, {"job_id", "j"},
                                 {"messages", mp::array{mp::map({{"role", "user"}, {"content", std::string(60, 'a')}}),
                                                        mp::map({{"role", "user"}, {"content", std::string(60, 'b')}})}}}),
                         lim));
  CHECK(field_names(err) == std::vector<std::string>{"messages"});
}

TEST_CASE("version and kind are checked before anything else", "[decode]") {
  auto err = as_error(decode(mp::map({{"v", 2}, {"kind", "submit"}, {"job_id", "job-9"}})));
  CHECK(err.code == error_code::unsupported_version);
  CHECK(err.job_id == std::optional<std::string>("job-9"));
  err = as_error(decode(mp::map({{"kind", "ping"}})));
  CHECK(err.code == error_code::invalid_request);
  CHECK(field_names(err) == std::vector<std::string>{"v"});
  err = as_error(decode(mp::map({{"v", "1"}, {"kind", "ping"}})));
  CHECK(err.code == error_code::invalid_request);
  err = as_error(decode(mp::map({{"v", 1}, {"kind", "explode"}, {"request_id", "r"}})));
  CHECK(err.code == error_code::unknown_kind);
  CHECK(err.request_id == std::optional<std::string>("r"));
  err = as_error(decode(mp::map({{"v", 1}})));
  CHECK(field_names(err) == std::vector<std::string>{"kind"});
  err = as_error(decode(mp::map({{"v", 1}, {"kind", 3}})));
  CHECK(field_names(err) == std::vector<std::string>{"kind"});
}

TEST_CASE("malformed msgpack never throws and is INVALID_REQUEST", "[decode][hostile]") {
  auto check_invalid = [](std::string body, const char* why) {
    INFO(why);
    decode_result r;
    REQUIRE_NOTHROW(r = decode_request(body));
    const auto& err = as_error(r);
    CHECK(err.code == error_code::invalid_request);
    CHECK_FALSE(err.job_id.has_value());
  };
  check_invalid("", "empty body");
  check_invalid("\xc1", "reserved byte 0xc1");
  check_invalid(std::string("\xdd\xff\xff\xff\xff", 5), "array32 claiming 4G elements");
  check_invalid(std::string("\xdf\x0f\xff\xff\xff", 5), "map32 claiming 268M entries");
  check_invalid(std::string("\xdb\xff\xff\xff\xff", 5), "str32 claiming 4 GiB");
  check_invalid(std::string("\x81\xa1v", 3), "truncated map");
  check_invalid(mp::encode(mp::map(base_submit())) + "x", "trailing byte");
  check_invalid(mp::encode(mp::array{1, 2}), "array body");
  check_invalid(mp::encode(42), "integer body");
  check_invalid(mp::encode(mp::map({{1, 1}, {"kind", "ping"}})), "non-string key");
  check_invalid(mp::encode(mp::map({{"v", 1}, {"v", 1}, {"kind", "ping"}})), "repeated key");
  check_invalid(std::string("\xd4\x01\x02", 3), "fixext");
  // Deeper than submit > messages > message > string.
  check_invalid(mp::encode(mp::map({{"v", 1}, {"kind", "ping"}, {"x", mp::array{mp::array{mp::array{mp::array{1}}}}}})),
                "nesting depth 5");
}

TEST_CASE("legitimate nesting depth is accepted", "[decode][hostile]") {
  const auto r = decode(mp::map({{"v", 1}, {"kind", "submit"}, {"job_id", "j"},
                                 {"messages", mp::array{mp::map({{"role", "user"}, {"content", "hi"}})}}}));
  CHECK(as_submit(r).messages.size() == 1);
}

TEST_CASE("bodies above max_message_bytes are MESSAGE_TOO_LARGE before parsing", "[decode][hostile]") {
  limits lim;
  lim.max_message_bytes = 1000;
  const auto body = mp::encode(mp::map({{"v", 1}, {"kind", "submit"}, {"job_id", "j"}, {"prompt", std::string(2000, 'a')}}));
  const auto& err = as_error(decode_request(body, lim));
  CHECK(err.code == error_code::message_too_large);
  CHECK_FALSE(err.retriable);
}

TEST_CASE("cancel, status and ping decode", "[decode]") {
  auto r = decode(mp::map({{"v", 1}, {"kind", "cancel"}, {"job_id", "j-1"}, {"request_id", "c1"}}));
  REQUIRE(std::holds_alternative<request>(r));
  const auto& c = std::get<cancel_request>(std::get<request>(r));
  CHECK(c.job_id == "j-1");
  CHECK(c.request_id == std::optional<std::string>("c1"));
  r = decode(mp::map({{"v", 1}, {"kind", "status"}}));
  CHECK(std::holds_alternative<status_request>(std::get<request>(r)));
  r = decode(mp::map({{"v", 1}, {"kind", "ping"}, {"request_id", "p"}}));
  CHECK(std::get<ping_request>(std::get<request>(r)).request_id == std::optional<std::string>("p"));
}
