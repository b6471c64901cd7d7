// Pre-tokenizers: split text into the pieces that BPE encodes separately. Each kind reproduces one regex
// of the reference tokenizers exactly (leftmost-first alternation, greedy quantifiers, backtracking),
// written out as a hand-made matcher over ICU character classes so it needs no regex engine:
//
//   qwen2  (tokenizer.json of Qwen2/2.5/3, model-facts.md §6.2)
//     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+
//     |\s+(?!\S)|\s+
//   gpt-4o (o200k_base / o200k_harmony, gpt-oss)
//     [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|...|'d)?
//     |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|...|'d)?
//     |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// \s is Unicode White_Space and (?i:) uses Unicode simple case folding, as in the Rust regex engines of
// HF tokenizers (Oniguruma) and tiktoken; docs/tokenizer.md lists where the JS port and llama.cpp differ.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "model/tokenizer/unicode_class.hpp"

namespace worker::model {

enum class pre_tokenizer_kind { qwen2, gpt4o };

// Everything the tokenizer derives from tokenizer.ggml.pre: the split regex and the two options that
// tokenizer.json carries but GGUF does not (the NFC normalizer and BPE's ignore_merges).
struct pre_tokenizer_config {
  pre_tokenizer_kind kind;
  bool nfc;            // normalize each text fragment to NFC before splitting (Qwen's "normalizer": NFC)
  bool ignore_merges;  // a piece that is itself a vocabulary entry is emitted whole (o200k, tiktoken)
};

// nullptr when `pre` names a pre-tokenizer we do not implement.
const pre_tokenizer_config* pre_tokenizer_config_for(std::string_view pre);

// A piece is the code point range [begin, end).
struct cp_range {
  std::uint32_t begin;
  std::uint32_t end;
};

// Splits code points (with their precomputed unicode_flags, same length) into consecutive pieces that
// cover the input exactly. Appends to `out`.
void pre_tokenize(pre_tokenizer_kind kind, std::span<const char32_t> cps, std::span<const cp_flags> flags,
                  std::vector<cp_range>& out);

}  // namespace worker::model
