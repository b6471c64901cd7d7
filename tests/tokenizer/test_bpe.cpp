// Byte-level BPE on a hand-made vocabulary: merge order by rank, leftmost tie-breaking, special tokens only
// when allowed, decode rendering per token type, vocabulary validation, and reading the vocabulary from a
// GGUF file (tokenizer_vocab_from_gguf).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "model/gguf.hpp"
#include "model/gguf_writer.hpp"
#include "model/tokenizer/byte_level.hpp"
#include "tests/tokenizer/test_vocab.hpp"

using namespace worker::model;
using testing::id_of;
using testing::make_test_vocab;

TEST_CASE("the byte-level alphabet maps the 68 non-printable bytes to U+0100.. in order") {
  CHECK(byte_to_code_point(' ') == U'\u0120');   // Ġ
  CHECK(byte_to_code_point('\n') == U'\u010A');  // Ċ
  CHECK(byte_to_code_point(0x00) == U'\u0100');
  CHECK(byte_to_code_point(0xAD) == U'\u0143');
  CHECK(byte_to_code_point('A') == U'A');
  CHECK(byte_to_code_point(0xE9) == U'\u00E9');
  for (int b = 0; b < 256; ++b) CHECK(code_point_to_byte(byte_to_code_point(static_cast<std::uint8_t>(b))) == b);
  CHECK(byte_level_decode("\xC4\xA0hi") == std::optional<std::string>(" hi"));
  CHECK_FALSE(byte_level_decode("\xE4\xB8\xAD").has_value());  // 中 is not in the alphabet
}

TEST_CASE("BPE merges the lowest-ranked pair first, leftmost on ties") {
  // rank 0: "b c", rank 1: "a b", rank 2: "a a", rank 3: "aa a"
  const auto v = make_test_vocab({.pre = "qwen2", .merges = {{"b", "c"}, {"a", "b"}, {"a", "a"}, {"aa", "a"}}, .specials = {}});
  const tokenizer tok(v);
  // "abc": (b,c) has rank 0 < (a,b) rank 1, so a + bc.
  CHECK(tok.encode("abc") == std::vector<token_id>{id_of(v, "a"), id_of(v, "bc")});
  // "aaa": the leftmost "a a" merges first, then "aa a" -> one token.
  CHECK(tok.encode("aaa") == std::vector<token_id>{id_of(v, "aaa")});
  // "aaaa": aa + aa (no "aa aa" merge), never a + aa + a.
  CHECK(tok.encode("aaaa") == std::vector<token_id>{id_of(v, "aa"), id_of(v, "aa")});
  // Bytes without merges stay single-byte tokens: the byte's own id.
  CHECK(tok.encode("\xE4\xB8\xAD") == std::vector<token_id>{0xE4, 0xB8, 0xAD});
}

TEST_CASE("BPE never merges across pre-tokenizer pieces") {
  const auto v = make_test_vocab({.pre = "qwen2", .merges = {{"o", " "}, {" ", "w"}}, .specials = {}});
  const tokenizer tok(v);
  // "o w" splits into "o" and " w": the "o " merge cannot apply.
  CHECK(tok.encode("o w") == std::vector<token_id>{'o', id_of(v, " w")});
}

TEST_CASE("gpt-4o ignore_merges: a piece that is a token is emitted whole even if merges would not reach it") {
  // "x y z" merges: only "y z"; the token "xyz" exists (added by a merge whose parts are not adjacent ranks).
  const auto v = make_test_vocab({.pre = "gpt-4o", .merges = {{"y", "z"}, {"xy", "z"}, {"x", "y"}}, .specials = {}});
  const tokenizer o200k(v);
  auto qv = v;
  qv.pre = "qwen2";
  const tokenizer qwen(qv);
  // Merging: (y,z) rank 0 -> x + yz; no "x yz" merge. With ignore_merges the whole piece "xyz" is a token.
  CHECK(qwen.encode("xyz") == std::vector<token_id>{'x', id_of(v, "yz")});
  CHECK(o200k.encode("xyz") == std::vector<token_id>{id_of(v, "xyz")});
}

TEST_CASE("special-token text is plain text unless the caller allows special tokens") {
  const auto v = make_test_vocab({.pre = "qwen2", .merges = {}, .specials = testing::chat_specials()});
  const tokenizer tok(v);
  const token_id im_end = id_of(v, "<|im_end|>");
  const token_id tool_call = id_of(v, "<tool_call>");

  const auto plain = tok.encode("hi<|im_end|><tool_call>");
  for (token_id id : plain) {
    CHECK(id != im_end);
    CHECK(id != tool_call);  // user-defined tokens are not matched in plain text either (unlike llama.cpp)
  }
  CHECK(tok.decode(plain) == "hi<|im_end|><tool_call>");

  const auto parsed = tok.encode("hi<|im_end|><tool_call>", special_tokens::parse);
  CHECK(parsed == std::vector<token_id>{'h', 'i', im_end, tool_call});
  // Unused (padding) tokens never match text, even with special parsing.
  for (token_id id : tok.encode("[PAD999]", special_tokens::parse)) CHECK(tok.type(id) == token_type::normal);
  // Leftmost-longest: "<|im_end|>" inside a longer unknown marker still matches at its position.
  CHECK(tok.encode("<|<|im_end|>|>", special_tokens::parse) ==
        std::vector<token_id>{'<', '|', im_end, '|', '>'});
}

TEST_CASE("decode renders control tokens only on request; user-defined tokens always") {
  const auto v = make_test_vocab({.pre = "qwen2", .merges = {}, .specials = testing::chat_specials()});
  const tokenizer tok(v);
  const std::vector<token_id> ids{'a', id_of(v, "<|im_end|>"), id_of(v, "<tool_call>"), id_of(v, "[PAD999]"), 'b'};
  CHECK(tok.decode(ids) == "a<tool_call>b");
  CHECK(tok.decode(ids, special_rendering::render) == "a<|im_end|><tool_call>[PAD999]b");
  CHECK_THROWS_AS(tok.decode(std::vector<token_id>{static_cast<token_id>(tok.size())}), tokenizer_error);
  CHECK(tok.find_special("<|im_start|>") == id_of(v, "<|im_start|>"));
  CHECK_FALSE(tok.find_special("<|nope|>").has_value());
  CHECK_THROWS_AS(tok.require_special("<|nope|>"), tokenizer_error);
}

TEST_CASE("vocabularies the tokenizer cannot use are rejected with a typed error") {
  auto expect_code = [](tokenizer_vocab v, tokenizer_error_code code) {
    try {
      tokenizer t(v);
      FAIL("accepted");
    } catch (const tokenizer_error& e) {
      CHECK(e.code() == code);
    }
  };
  auto v = make_test_vocab({.pre = "qwen2", .merges = {{"a", "b"}}, .specials = {}});
  auto bad = v;
  bad.model = "llama";
  expect_code(bad, tokenizer_error_code::unsupported_model);
  bad = v;
  bad.pre = "llama3";
  expect_code(bad, tokenizer_error_code::unsupported_pre);
  bad = v;
  bad.token_types.pop_back();
  expect_code(bad, tokenizer_error_code::bad_vocab);
  bad = v;
  bad.tokens[' '] = "not-a-byte-token-\xE4\xB8\xAD";  // byte 0x20 has no token any more
  expect_code(bad, tokenizer_error_code::bad_vocab);
  bad = v;
  bad.merges.push_back("a");  // no space
  expect_code(bad, tokenizer_error_code::bad_merge);
  bad = v;
  bad.merges.push_back("x yz");  // yz is not a token
  expect_code(bad, tokenizer_error_code::bad_merge);
  bad = v;
  bad.eos_id = static_cast<std::uint32_t>(v.tokens.size());
  expect_code(bad, tokenizer_error_code::bad_vocab);
}

TEST_CASE("tokenizer_vocab_from_gguf reads the tokenizer keys and rejects wrong types") {
  const auto v = make_test_vocab({.pre = "gpt-4o", .merges = {{"a", "b"}}, .specials = testing::chat_specials()});
  // Per process: other build directories may run the same test at the same time.
  const auto dir = std::filesystem::temp_directory_path() / ("worker-tokenizer-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);

  auto write = [&](const std::filesystem::path& path, bool types_as_strings) {
    gguf_writer w(path);
    w.add_string("general.architecture", "gpt-oss");
    w.add_string("tokenizer.ggml.model", v.model);
    w.add_string("tokenizer.ggml.pre", v.pre);
    w.add_array("tokenizer.ggml.tokens", std::span<const std::string>(v.tokens));
    if (types_as_strings) {
      w.add_array("tokenizer.ggml.token_type", std::span<const std::string>(v.tokens));
    } else {
      std::vector<std::int32_t> types;
      for (auto t : v.token_types) types.push_back(static_cast<std::int32_t>(t));
      w.add_array("tokenizer.ggml.token_type", std::span<const std::int32_t>(types));
    }
    w.add_array("tokenizer.ggml.merges", std::span<const std::string>(v.merges));
    w.add_uint32("tokenizer.ggml.eos_token_id", 257);
    w.add_bool("tokenizer.ggml.add_bos_token", false);
    w.begin_data();
    w.finish();
  };

  write(dir / "good.gguf", false);
  const gguf_file good = gguf_file::open(dir / "good.gguf");
  const tokenizer_vocab read = tokenizer_vocab_from_gguf(good);
  CHECK(read.model == "gpt2");
  CHECK(read.pre == "gpt-4o");
  CHECK(read.tokens == v.tokens);
  CHECK(read.token_types == v.token_types);
  CHECK(read.merges == v.merges);
  CHECK(read.eos_id == 257u);
  CHECK(!read.bos_id.has_value());
  CHECK(read.add_bos == false);
  const tokenizer tok(read);
  CHECK(tok.encode("ab") == std::vector<token_id>{256});

  write(dir / "bad.gguf", true);
  const gguf_file bad = gguf_file::open(dir / "bad.gguf");
  try {
    (void)tokenizer_vocab_from_gguf(bad);
    FAIL("accepted string token types");
  } catch (const gguf_error& e) {
    CHECK(e.code() == gguf_error_code::metadata_type);
    CHECK(e.where() == "tokenizer.ggml.token_type");
  }
  std::filesystem::remove_all(dir);
}
