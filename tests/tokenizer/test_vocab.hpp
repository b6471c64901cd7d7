// A small hand-made byte-level BPE vocabulary for unit tests: the 256 byte tokens (ids 0-255, in byte
// order), the merged tokens of the merges given, then special tokens. Lets tests state exact ids.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "model/tokenizer/byte_level.hpp"
#include "model/tokenizer/tokenizer.hpp"
#include "model/tokenizer_vocab.hpp"

namespace worker::model::testing {

struct test_vocab_spec {
  std::string pre = "qwen2";
  // Merges as raw-byte pairs, in rank order; each adds the token left+right (if new) after the bytes.
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::pair<std::string, token_type>> specials;  // appended after the merged tokens
};

inline tokenizer_vocab make_test_vocab(const test_vocab_spec& spec) {
  tokenizer_vocab v;
  v.model = "gpt2";
  v.pre = spec.pre;
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(byte_level_encode(std::string(1, static_cast<char>(b))));
    v.token_types.push_back(token_type::normal);
  }
  for (const auto& [l, r] : spec.merges) {
    const std::string merged = byte_level_encode(l + r);
    bool known = false;
    for (const auto& t : v.tokens) known = known || t == merged;
    if (!known) {
      v.tokens.push_back(merged);
      v.token_types.push_back(token_type::normal);
    }
    v.merges.push_back(byte_level_encode(l) + " " + byte_level_encode(r));
  }
  for (const auto& [text, type] : spec.specials) {
    v.tokens.push_back(text);
    v.token_types.push_back(type);
  }
  return v;
}

// The id of a token by its raw bytes (normal) or text (special), for readable expectations.
inline token_id id_of(const tokenizer_vocab& v, const std::string& raw) {
  for (token_id id = 0; id < v.tokens.size(); ++id) {
    if (v.token_types[id] == token_type::normal ? v.tokens[id] == byte_level_encode(raw) : v.tokens[id] == raw) return id;
  }
  throw std::runtime_error("no token " + raw);
}

inline const std::vector<std::pair<std::string, token_type>>& chat_specials() {
  static const std::vector<std::pair<std::string, token_type>> s{
      {"<|endoftext|>", token_type::control}, {"<|im_start|>", token_type::control},
      {"<|im_end|>", token_type::control},    {"<tool_call>", token_type::user_defined},
      {"<|fim_pad|>", token_type::control},   {"<|repo_name|>", token_type::control},
      {"<|file_sep|>", token_type::control},  {"<|start|>", token_type::control},
      {"<|end|>", token_type::control},       {"<|message|>", token_type::control},
      {"<|channel|>", token_type::control},   {"<|constrain|>", token_type::control},
      {"<|return|>", token_type::control},    {"<|call|>", token_type::control},
      {"[PAD999]", token_type::unused},
  };
  return s;
}

}  // namespace worker::model::testing
