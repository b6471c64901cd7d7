// Narration events: secrets are redacted, the human sentence is cut on a UTF-8 boundary, control
// characters cannot forge log lines, and structured fields keep their types.
#include <catch2/catch.hpp>

#include "actors/narration.hpp"
#include "protocol/utf8.hpp"

using worker::actors::make_narration;
using worker::actors::redact;

TEST_CASE("credentials are redacted wherever they appear", "[narration]") {
  CHECK(redact("Authorization: Bearer abc.DEF-123_x") == "Authorization: Bearer [REDACTED]");
  CHECK(redact("url?api_key=s3cr3t&x=1") == "url?api_key=[REDACTED]&x=1");
  CHECK(redact("APIKEY=zzz") == "APIKEY=[REDACTED]");
  CHECK(redact("token=t0k password=hunter2") == "token=[REDACTED] password=[REDACTED]");
  CHECK(redact("connect to https://bob:pa55@example.com/db") == "connect to https://bob:[REDACTED]@example.com/db");
  CHECK(redact("key -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done") == "key [REDACTED] done");
}

TEST_CASE("ordinary text is left alone", "[narration]") {
  CHECK(redact("job-1 finished: eos after 12 tokens in 41 ms") == "job-1 finished: eos after 12 tokens in 41 ms");
  CHECK(redact("max_tokens=5 tokens_out=3") == "max_tokens=5 tokens_out=3");  // not "token=" at a word start
  CHECK(redact("https://example.com/path") == "https://example.com/path");
  CHECK(redact("caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd") == "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd");
}

TEST_CASE("control characters cannot start a new log line", "[narration]") {
  CHECK(redact("line one\nFAKE ERROR\r\x1b[31m") == "line one FAKE ERROR  [31m");
}

TEST_CASE("narration events are cut, redacted and stamped", "[narration]") {
  std::string human;
  for (int i = 0; i < 100; ++i) human += "\xe4\xbd\xa0";  // 300 bytes of 3-byte characters
  auto e = make_narration("w0", {"session", "end", "job-1", human, "job-1", "corr-1",
                                 {{"tokens_out", std::int64_t{12}}, {"note", std::string("Bearer xyz")}}});
  CHECK(e.human.size() <= 160);
  CHECK(e.human.size() % 3 == 0);
  CHECK(worker::protocol::is_valid_utf8(e.human));
  CHECK(e.worker_id == "w0");
  CHECK(e.job_id == std::optional<std::string>("job-1"));
  CHECK(e.correlation_id == std::optional<std::string>("corr-1"));
  CHECK(e.time_ms > 1700000000000ull);
  REQUIRE(e.fields.size() == 2);
  CHECK(std::get<std::int64_t>(e.fields[0].second) == 12);
  CHECK(std::get<std::string>(e.fields[1].second) == "Bearer [REDACTED]");
}
