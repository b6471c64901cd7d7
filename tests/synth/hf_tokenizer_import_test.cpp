// HF tokenizer.json -> GGUF tokenizer layout: the converter's rules on a small hand-written tokenizer,
// and the real Qwen and gpt-oss packages laid out as the real GGUF files are (model-facts.md §1.6, §6.4).
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "model/hf_tokenizer_import.hpp"

namespace {

using namespace worker::model;

std::filesystem::path write_package(const std::string& name, const std::string& tokenizer, const std::string& config) {
  const auto dir = std::filesystem::temp_directory_path() / "worker_orcd_synth_test" / name;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << tokenizer;
  if (!config.empty()) std::ofstream(dir / "tokenizer_config.json") << config;
  return dir / "tokenizer.json";
}

// ids 0..3 in the vocab, a hole at 4, added tokens 5 (special), 6 (looks special but special:false),
// 7 (plain user token), 8 (left out by last_id in one case).
const std::string k_small_tokenizer = R"({
  "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3},
            "merges": ["a b", ["Ġ", "a"]]},
  "added_tokens": [
    {"id": 5, "content": "<|end|>", "special": true},
    {"id": 6, "content": "<|fim|>", "special": false},
    {"id": 7, "content": "<tool>", "special": false},
    {"id": 8, "content": "<think>", "special": false}
  ]
})";
const std::string k_small_config = R"({
  "bos_token": null, "eos_token": {"content": "<|end|>"}, "pad_token": "<tool>", "add_bos_token": false,
  "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
})";

}  // namespace

TEST_CASE("added tokens, holes and padding follow the converter's layout rules") {
  const auto path = write_package("small", k_small_tokenizer, k_small_config);
  hf_tokenizer_import_options o;
  o.pre = "qwen2";
  o.padded_size = 12;
  const auto v = import_hf_tokenizer(path, o);
  CHECK(v.model == "gpt2");
  CHECK(v.pre == "qwen2");
  REQUIRE(v.tokens.size() == 12);
  REQUIRE(v.token_types.size() == 12);
  CHECK(v.tokens[2] == "ab");
  CHECK(v.token_types[2] == token_type::normal);
  CHECK(v.tokens[3] == "Ġ");  // byte-level text kept exactly as in the vocab
  CHECK(v.tokens[4] == "[PAD4]");
  CHECK(v.token_types[4] == token_type::unused);
  CHECK(v.token_types[5] == token_type::control);
  CHECK(v.token_types[6] == token_type::control);  // <|...|> is control even when HF says special:false
  CHECK(v.tokens[7] == "<tool>");
  CHECK(v.token_types[7] == token_type::user_defined);
  CHECK(v.token_types[8] == token_type::user_defined);
  CHECK(v.tokens[11] == "[PAD11]");
  CHECK(v.token_types[11] == token_type::unused);
  CHECK(v.merges == std::vector<std::string>{"a b", "Ġ a"});
  CHECK_FALSE(v.bos_id.has_value());  // null in the config and not forced
  CHECK(v.eos_id == 5u);
  CHECK(v.pad_id == 7u);
  CHECK(v.add_bos == false);
  CHECK(v.chat_template == "D");
}

TEST_CASE("last_id leaves later tokens out and forced ids override the config") {
  const auto path = write_package("small", k_small_tokenizer, k_small_config);
  hf_tokenizer_import_options o;
  o.pre = "gpt-4o";
  o.last_id = 7;
  o.padded_size = 10;
  o.bos_id = 5;
  o.eos_id = 7;
  const auto v = import_hf_tokenizer(path, o);
  CHECK(v.tokens[8] == "[PAD8]");
  CHECK(v.token_types[8] == token_type::unused);
  CHECK(v.bos_id == 5u);
  CHECK(v.eos_id == 7u);
}

TEST_CASE("a tokenizer that does not fit is an hf_import_error") {
  hf_tokenizer_import_options o;
  o.pre = "qwen2";
  SECTION("more tokens than rows") {
    o.padded_size = 8;
    CHECK_THROWS_AS(import_hf_tokenizer(write_package("small", k_small_tokenizer, k_small_config), o), hf_import_error);
  }
  SECTION("two tokens on one id") {
    const auto path = write_package("dup", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}, "merges": []}})", "");
    CHECK_THROWS_AS(import_hf_tokenizer(path, o), hf_import_error);
  }
  SECTION("an implausibly large id") {
    const auto path = write_package("huge", R"({"model": {"type": "BPE", "vocab": {"a": 4000000000}, "merges": []}})", "");
    CHECK_THROWS_AS(import_hf_tokenizer(path, o), hf_import_error);
  }
  SECTION("not BPE") {
    const auto path = write_package("wp", R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})", "");
    CHECK_THROWS_AS(import_hf_tokenizer(path, o), hf_import_error);
  }
  SECTION("a special token name the vocabulary lacks") {
    const auto path = write_package("badcfg", k_small_tokenizer, R"({"eos_token": "<missing>"})");
    CHECK_THROWS_AS(import_hf_tokenizer(path, o), hf_import_error);
  }
  SECTION("not JSON") {
    const auto path = write_package("notjson", "{\"model\": ", "");
    CHECK_THROWS_AS(import_hf_tokenizer(path, o), hf_import_error);
  }
  SECTION("a missing file") {
    CHECK_THROWS_AS(import_hf_tokenizer("/nonexistent/tokenizer.json", o), hf_import_error);
  }
}

TEST_CASE("the Qwen3 package imports as Qwen2.5's 152064-row vocabulary") {
  hf_tokenizer_import_options o;
  o.pre = "qwen2";
  o.last_id = 151664;
  o.padded_size = 152064;
  o.bos_id = 151643;
  const auto v = import_hf_tokenizer(WORKER_ORCD_QWEN_TOKENIZER, o);
  REQUIRE(v.tokens.size() == 152064);
  CHECK(v.merges.size() == 151387);
  CHECK(v.merges.front() == "Ġ Ġ");
  CHECK(v.tokens[0] == "!");
  CHECK(v.tokens[220] == "Ġ");
  std::size_t normal = 0, control = 0, user = 0, unused = 0;
  for (auto t : v.token_types) {
    normal += t == token_type::normal;
    control += t == token_type::control;
    user += t == token_type::user_defined;
    unused += t == token_type::unused;
  }
  CHECK(normal == 151643);
  CHECK(control == 20);  // 151643-151664 except <tool_call>, </tool_call>
  CHECK(user == 2);
  CHECK(unused == 152064 - 151665);
  CHECK(v.tokens[151643] == "<|endoftext|>");
  CHECK(v.tokens[151645] == "<|im_end|>");
  CHECK(v.token_types[151657] == token_type::user_defined);
  CHECK(v.tokens[151657] == "<tool_call>");
  CHECK(v.token_types[151662] == token_type::control);  // <|fim_pad|>, special:false in HF
  CHECK(v.tokens[151664] == "<|file_sep|>");
  CHECK(v.tokens[151665] == "[PAD151665]");  // Qwen3's <tool_response> is not in Qwen2.5
  CHECK(v.tokens[151667] == "[PAD151667]");  // nor <think>
  CHECK(v.token_types[151667] == token_type::unused);
  CHECK(v.bos_id == 151643u);
  CHECK(v.eos_id == 151645u);  // <|im_end|> from tokenizer_config.json
  CHECK(v.pad_id == 151643u);
  CHECK(v.add_bos == false);
  CHECK(v.chat_template.has_value());
}

TEST_CASE("the gpt-oss package imports as 200019 entries padded to 201088 rows") {
  hf_tokenizer_import_options o;
  o.pre = "gpt-4o";
  o.padded_size = 201088;
  const auto v = import_hf_tokenizer(WORKER_ORCD_GPT_OSS_TOKENIZER, o);
  REQUIRE(v.tokens.size() == 201088);
  CHECK(v.merges.size() == 446189);
  std::size_t control = 0, unused = 0;
  for (auto t : v.token_types) {
    control += t == token_type::control;
    unused += t == token_type::unused;
  }
  CHECK(control == 21);  // 199998-200018, all special
  CHECK(unused == 201088 - 200019);
  CHECK(v.tokens[199997] == "Ġcocos");
  CHECK(v.tokens[200002] == "<|return|>");
  CHECK(v.tokens[200018] == "<|endofprompt|>");
  CHECK(v.tokens[200019] == "[PAD200019]");
  CHECK(v.tokens[201087] == "[PAD201087]");
  CHECK(v.bos_id == 199998u);  // tokenizer_config.json names <|startoftext|>
  CHECK(v.eos_id == 200002u);
  CHECK(v.pad_id == 199999u);
  CHECK_FALSE(v.add_bos.has_value());  // the package does not say; GGUF files omit the key
}
