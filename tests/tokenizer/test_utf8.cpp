// UTF-8 edge cases: what the tokenizer accepts (NUL, BOM, 4-byte, U+10FFFF, bidi text) and what it rejects
// with a typed error that names the byte offset (overlong, truncated, surrogate, out of range, stray bytes).
#include <catch2/catch.hpp>

#include <string>

#include "model/tokenizer/utf8.hpp"
#include "tests/tokenizer/test_vocab.hpp"

using namespace worker::model;

namespace {

void check_rejected(const std::string& text, utf8_error_kind kind, std::size_t offset) {
  INFO("bytes at offset " << offset);
  const auto problem = utf8_find_problem(text);
  REQUIRE(problem.has_value());
  CHECK(problem->kind == kind);
  CHECK(problem->offset == offset);
}

}  // namespace

TEST_CASE("valid UTF-8 edge cases are accepted") {
  for (const std::string& s : {std::string("", 0), std::string("a\0b", 3), std::string("\xEF\xBB\xBFhello"),  // BOM
                              std::string("\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9"),                 // ZWJ pair
                              std::string("\xF4\x8F\xBF\xBF"),                                              // U+10FFFF
                              std::string("\xED\x9F\xBF\xEE\x80\x80"),                                      // U+D7FF U+E000
                              std::string("\xC2\x80\xDF\xBF\xE0\xA0\x80\xF0\x90\x80\x80"),                  // shortest forms
                              std::string("English \xD7\xA2\xD7\x91\xD7\xA8\xD7\x99\xD7\xAA \xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A"
                                          " \xE2\x80\x8F\xE2\x80\xAE")}) {                                  // bidi + RLM/RLO
    CHECK_FALSE(utf8_find_problem(s).has_value());
  }
}

TEST_CASE("invalid UTF-8 is reported with its kind and byte offset") {
  check_rejected("ab\xC0\x80", utf8_error_kind::overlong_encoding, 2);          // overlong NUL
  check_rejected("\xC1\xBF", utf8_error_kind::overlong_encoding, 0);
  check_rejected("x\xE0\x80\x80", utf8_error_kind::overlong_encoding, 1);
  check_rejected("\xF0\x8F\xBF\xBF", utf8_error_kind::overlong_encoding, 0);
  check_rejected("abc\xE4\xB8", utf8_error_kind::truncated_sequence, 3);         // CJK cut short
  check_rejected("\xF0\x9F\x9A", utf8_error_kind::truncated_sequence, 0);        // rocket cut after 3 bytes
  check_rejected("\xC3", utf8_error_kind::truncated_sequence, 0);
  check_rejected("abc\xC3\x28", utf8_error_kind::bad_continuation, 3);           // C3 28
  check_rejected("\xE4\xB8\x41", utf8_error_kind::bad_continuation, 0);
  check_rejected("ok\x80", utf8_error_kind::invalid_lead_byte, 2);               // stray continuation
  check_rejected("\xFF", utf8_error_kind::invalid_lead_byte, 0);
  check_rejected("\xF5\x80\x80\x80", utf8_error_kind::out_of_range, 0);
  check_rejected("\xF4\x90\x80\x80", utf8_error_kind::out_of_range, 0);          // U+110000
  check_rejected("\xED\xA0\x80", utf8_error_kind::surrogate, 0);                 // U+D800
  check_rejected("\xED\xBF\xBF", utf8_error_kind::surrogate, 0);                 // U+DFFF
  check_rejected("12345678\x80", utf8_error_kind::invalid_lead_byte, 8);         // after the ASCII fast path
}

TEST_CASE("the tokenizer rejects invalid input with utf8_error saying where, in both special modes") {
  const auto vocab = testing::make_test_vocab({});
  const tokenizer tok(vocab);
  for (auto mode : {special_tokens::plain, special_tokens::parse}) {
    try {
      (void)tok.encode("hello \xC0\x80 world", mode);
      FAIL("no error");
    } catch (const utf8_error& e) {
      CHECK(e.offset() == 6);
      CHECK(e.kind() == utf8_error_kind::overlong_encoding);
      CHECK(std::string(e.what()).find("byte 6") != std::string::npos);
    }
  }
}

TEST_CASE("decode(encode(x)) == x for NUL, BOM, emoji sequences, flags and bidi text") {
  const auto vocab = testing::make_test_vocab({});
  const tokenizer tok(vocab);
  for (const std::string& s : {std::string("a\0b", 3), std::string("\xEF\xBB\xBF" "BOM first"),
                              std::string("👨‍👩‍👧‍👦 family"), std::string("🇺🇸🇯🇵 flags"), std::string("👍🏿 skin"),
                              std::string("🏴󠁧󠁢󠁳󠁣󠁴󠁿 tag sequence"), std::string("abc \u202Eعربي\u202C def \u200F"),
                              std::string("\xF4\x8F\xBF\xBF")}) {
    CHECK(tok.decode(tok.encode(s)) == s);
  }
}

TEST_CASE("utf8_decode gives code points and byte offsets") {
  std::vector<std::uint32_t> offsets;
  const auto cps = utf8_decode("a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x9A\x80", &offsets);
  CHECK(cps == std::vector<char32_t>{U'a', U'é', U'中', U'🚀'});
  CHECK(offsets == std::vector<std::uint32_t>{0, 1, 3, 6, 10});
  std::string out;
  for (char32_t c : cps) utf8_append(out, c);
  CHECK(out == "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x9A\x80");
}
