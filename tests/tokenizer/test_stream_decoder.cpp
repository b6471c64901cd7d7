// Streaming detokenizer: every split of every multi-byte character across tokens comes out whole, in order,
// with no U+FFFD; invalid bytes (which a model can emit) become U+FFFD without losing the text around them.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "model/tokenizer/stream_decoder.hpp"
#include "tests/tokenizer/test_vocab.hpp"

using namespace worker::model;

namespace {

const std::string k_fffd = "\xEF\xBF\xBD";

// Feeds `ids` one at a time; returns the pieces emitted per push, then the flush.
std::vector<std::string> stream(const tokenizer& tok, const std::vector<token_id>& ids) {
  stream_decoder dec(tok);
  std::vector<std::string> out;
  for (token_id id : ids) out.push_back(dec.push(id));
  out.push_back(dec.flush());
  return out;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string s;
  for (const auto& p : parts) s += p;
  return s;
}

}  // namespace

TEST_CASE("a multi-byte character split at every byte boundary is emitted once, when complete") {
  const auto v = testing::make_test_vocab({});
  const tokenizer tok(v);
  // 2-, 3- and 4-byte characters: é, 中, 🚀 (the rocket split after byte 1, 2 or 3).
  for (const std::string ch : {"\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x9A\x80"}) {
    std::vector<token_id> ids;
    for (unsigned char b : ch) ids.push_back(b);  // one byte token per byte: every split at once
    const auto parts = stream(tok, ids);
    for (std::size_t i = 0; i + 2 < parts.size(); ++i) CHECK(parts[i].empty());
    CHECK(parts[parts.size() - 2] == ch);
    CHECK(parts.back().empty());
  }
}

TEST_CASE("every way of cutting a text into tokens at arbitrary byte positions streams back the same text") {
  // Tokens made of arbitrary byte ranges: use merges so that some tokens end inside a character.
  const auto v = testing::make_test_vocab(
      {.pre = "qwen2",
       .merges = {{"\xF0", "\x9F"}, {"\x9A", "\x80"}, {"\xE4", "\xB8"}, {"\xAD", "a"}, {"\xA9", " "}},
       .specials = {}});
  const tokenizer tok(v);
  const std::string text = "a\xC3\xA9 \xE4\xB8\xAD" "a\xF0\x9F\x9A\x80 👨‍👩‍👧‍👦 🇺🇸 👍🏽";
  const std::string bytes = text;
  // All splits into byte tokens of lengths 1..3 where merges exist are covered by taking every byte as
  // its own token plus the merged pairs: check the byte-per-token stream and the BPE stream.
  std::vector<token_id> per_byte;
  for (unsigned char b : bytes) per_byte.push_back(b);
  CHECK(joined(stream(tok, per_byte)) == text);
  CHECK(joined(stream(tok, tok.encode(text))) == text);
  for (const auto& piece : stream(tok, per_byte)) CHECK(piece.find(k_fffd) == std::string::npos);
}

TEST_CASE("emitted pieces are always whole UTF-8 code points") {
  const auto v = testing::make_test_vocab({});
  const tokenizer tok(v);
  const std::string text = "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 ZWJ, \xD7\xA9\xD7\x9C\xD7\x95\xD7\x9D, \xE0\xA4\xA8\xE0\xA4\xAE";
  std::vector<token_id> ids;
  for (unsigned char b : text) ids.push_back(b);
  for (const auto& piece : stream(tok, ids)) CHECK_FALSE(utf8_find_problem(piece).has_value());
}

TEST_CASE("invalid bytes become U+FFFD, one per maximal subpart, and the text around them survives") {
  const auto v = testing::make_test_vocab({});
  const tokenizer tok(v);
  auto run = [&](const std::string& bytes) {
    std::vector<token_id> ids;
    for (unsigned char b : bytes) ids.push_back(b);
    return joined(stream(tok, ids));
  };
  CHECK(run("a\x80" "b") == "a" + k_fffd + "b");                 // stray continuation byte
  CHECK(run("a\xE4\xB8" "b") == "a" + k_fffd + "b");             // truncated 3-byte sequence, then ASCII
  CHECK(run("\xC0\x80") == k_fffd + k_fffd);                      // overlong: two maximal subparts
  CHECK(run("x\xF0\x9F\x9A") == "x" + k_fffd);                    // unfinished at the end: flushed as one
  CHECK(run("\xED\xA0\x80") == k_fffd + k_fffd + k_fffd);         // surrogate: ED is a subpart of its own
}

TEST_CASE("control tokens are skipped or rendered in the stream as asked") {
  const auto v = testing::make_test_vocab({.pre = "qwen2", .merges = {}, .specials = testing::chat_specials()});
  const tokenizer tok(v);
  const token_id im_end = testing::id_of(v, "<|im_end|>");
  stream_decoder skip(tok);
  CHECK(skip.push('a') == "a");
  CHECK(skip.push(im_end).empty());
  stream_decoder render(tok, special_rendering::render);
  CHECK(render.push(0xC3).empty());
  CHECK(render.held_bytes() == 1);
  CHECK(render.push(0xA9) == "\xC3\xA9");
  CHECK(render.push(im_end) == "<|im_end|>");
}
