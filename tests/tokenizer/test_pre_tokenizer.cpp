// Pre-tokenizer splits for qwen2 and gpt-4o on hand-picked cases whose expected pieces were taken from the
// reference regexes (the oracle test covers the rest exactly).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "model/tokenizer/pre_tokenizer.hpp"
#include "model/tokenizer/unicode_class.hpp"
#include "model/tokenizer/utf8.hpp"

using namespace worker::model;

namespace {

std::vector<std::string> split(pre_tokenizer_kind kind, const std::string& text) {
  std::vector<std::uint32_t> offsets;
  const auto cps = utf8_decode(text, &offsets);
  std::vector<cp_flags> flags;
  for (char32_t c : cps) flags.push_back(unicode_flags(c));
  std::vector<cp_range> pieces;
  pre_tokenize(kind, cps, flags, pieces);
  std::vector<std::string> out;
  for (const auto& r : pieces) out.push_back(text.substr(offsets[r.begin], offsets[r.end] - offsets[r.begin]));
  return out;
}

using strs = std::vector<std::string>;
constexpr auto qwen = pre_tokenizer_kind::qwen2;
constexpr auto o200k = pre_tokenizer_kind::gpt4o;

}  // namespace

TEST_CASE("both pre-tokenizers attach one leading space to a word and split whitespace runs before it") {
  for (auto kind : {qwen, o200k}) {
    CHECK(split(kind, "Hello world") == strs{"Hello", " world"});
    CHECK(split(kind, "  x") == strs{" ", " x"});
    CHECK(split(kind, "x   ") == strs{"x", "   "});
    CHECK(split(kind, "x  \n  y") == strs{"x", "  \n", " ", " y"});
    CHECK(split(kind, "a \t\n b") == strs{"a", " \t\n", " b"});
    CHECK(split(kind, "\tfoo") == strs{"\tfoo"});
    CHECK(split(kind, "?!\r\n\r\nx") == strs{"?!\r\n\r\n", "x"});
    CHECK(split(kind, "(hello) [world]") == strs{"(hello", ")", " [", "world", "]"});
    CHECK(split(kind, "日本語のテキスト") == strs{"日本語のテキスト"});
  }
}

TEST_CASE("qwen2 splits digits one by one; gpt-4o groups them by three") {
  CHECK(split(qwen, "1234567") == strs{"1", "2", "3", "4", "5", "6", "7"});
  CHECK(split(o200k, "1234567") == strs{"123", "456", "7"});
  CHECK(split(o200k, "a1b22c333d4444") == strs{"a", "1", "b", "22", "c", "333", "d", "444", "4"});
}

TEST_CASE("contractions: qwen2 splits them off, gpt-4o keeps them on the word") {
  CHECK(split(qwen, "don't stop") == strs{"don", "'t", " stop"});
  CHECK(split(o200k, "don't stop") == strs{"don't", " stop"});
  CHECK(split(qwen, "Hello WORLD's") == strs{"Hello", " WORLD", "'s"});
  CHECK(split(o200k, "Hello WORLD's") == strs{"Hello", " WORLD's"});
  CHECK(split(qwen, "'s'S'll") == strs{"'s", "'S", "'ll"});
  CHECK(split(o200k, "'s'S'll") == strs{"'s'S", "'ll"});
}

TEST_CASE("contractions match case-insensitively the Unicode way: U+017F long s folds to s") {
  CHECK(split(qwen, "it\u2019s") != split(qwen, "it's"));  // a curly apostrophe is not a contraction
  CHECK(split(o200k, "x'\u017F") == strs{"x'\u017F"});
  CHECK(split(o200k, "x'S") == strs{"x'S"});
}

TEST_CASE("gpt-4o letter classes: case runs, marks inside words, titlecase") {
  CHECK(split(o200k, "HTTPServer") == strs{"HTTPServer"});
  CHECK(split(o200k, "It's HELLOworld") == strs{"It's", " HELLOworld"});
  CHECK(split(o200k, "ǅemal") == strs{"ǅemal"});
  // A combining mark is neither \p{L} nor \p{N}: qwen2 starts a new piece at it, o200k keeps it in the word.
  CHECK(split(qwen, "e\u0301x") == strs{"e", "\u0301x"});
  CHECK(split(o200k, "e\u0301x") == strs{"e\u0301x"});
}

TEST_CASE("punctuation runs take trailing newlines; gpt-4o also trailing slashes") {
  CHECK(split(qwen, " ...\n\n") == strs{" ...\n\n"});
  CHECK(split(qwen, "a/b//c\n") == strs{"a", "/b", "//", "c", "\n"});
  CHECK(split(o200k, "a/b//c\n") == strs{"a", "/b", "//", "c", "\n"});
  CHECK(split(o200k, "x.//y") == strs{"x", ".//", "y"});
  CHECK(split(qwen, "__init__") == strs{"__", "init", "__"});
}

TEST_CASE("white space is Unicode White_Space: U+0085 is, U+FEFF and U+200B are not") {
  CHECK(split(qwen, "a\u0085\u0085b") == strs{"a", "\u0085", "\u0085b"});
  CHECK(split(qwen, "\uFEFFHello") == strs{"\uFEFFHello"});
  CHECK(split(qwen, "a\u200Bb") == strs{"a", "\u200Bb"});
  CHECK(split(qwen, "a\u3000\u3000b") == strs{"a", "\u3000", "\u3000b"});
}

TEST_CASE("pieces always cover the input exactly, whatever it is") {
  const std::string text = "x\u0301\u0301 ' '' 1\u0661\u0662 \u00A0\n\r\t\u000B\u000C\u2028z\u0000y🙂‍\u200D";
  for (auto kind : {qwen, o200k}) {
    std::string joined;
    for (const auto& p : split(kind, text)) {
      CHECK(!p.empty());
      joined += p;
    }
    CHECK(joined == text);
  }
}

TEST_CASE("pre-tokenizer configs come from tokenizer.ggml.pre") {
  REQUIRE(pre_tokenizer_config_for("qwen2"));
  CHECK(pre_tokenizer_config_for("qwen2")->nfc);
  CHECK(!pre_tokenizer_config_for("qwen2")->ignore_merges);
  REQUIRE(pre_tokenizer_config_for("gpt-4o"));
  CHECK(!pre_tokenizer_config_for("gpt-4o")->nfc);
  CHECK(pre_tokenizer_config_for("gpt-4o")->ignore_merges);
  CHECK(pre_tokenizer_config_for("llama3") == nullptr);
  CHECK(pre_tokenizer_config_for("") == nullptr);
}
