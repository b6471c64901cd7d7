// Test-only re-creations of how the two reference tokenizers depart from the model's own definition, built
// from our tokenizer's parts (special split, pre_tokenize over adjustable character classes, BPE). The
// oracle test uses them to *prove* each documented disagreement (docs/tokenizer.md): a mismatch counts as
// explained only when the reference's ids equal our tokenizer with exactly that documented deviation
// switched on. Never used by the product.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer/tokenizer.hpp"
#include "model/tokenizer/unicode_class.hpp"

namespace worker::model::testing {

struct tokenizer_variant {
  bool nfc = true;                  // apply the model's NFC normalizer (when the pre-tokenizer has one)
  bool js_whitespace = false;       // JS RegExp \s: U+FEFF is white space, U+0085 is not (@lenml/tokenizers)
  bool llama_o200k_classes = false; // llama.cpp's approximation of the o200k letter classes
  bool ignore_merges = true;        // honour the pre-tokenizer's ignore_merges (llama.cpp does not)
  // Texts matched as tokens even in plain mode (llama.cpp matches USER_DEFINED tokens always).
  std::vector<std::string> always_matched;
};

inline cp_flags variant_flags(char32_t cp, const tokenizer_variant& v) {
  cp_flags f = unicode_flags(cp);
  if (v.js_whitespace) {
    if (cp == 0xFEFF) f |= cp_space;
    if (cp == 0x0085) f &= static_cast<cp_flags>(~cp_space);
  }
  if (v.llama_o200k_classes) {
    // llama.cpp writes [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] as (?=\p{L})[^a-z] and [\p{Ll}\p{Lm}\p{Lo}\p{M}] as
    // (?=\p{L})[^A-Z]: any letter that is not ASCII belongs to both classes, marks to neither.
    const cp_flags letter_bits = cp_upper | cp_lower | cp_title | cp_modifier | cp_other_letter | cp_mark;
    const bool letter = f & cp_letter;
    f &= static_cast<cp_flags>(~letter_bits);
    if (letter) {
      if (cp >= U'a' && cp <= U'z') f |= cp_lower;
      else if (cp >= U'A' && cp <= U'Z') f |= cp_upper;
      else f |= cp_modifier;  // Lm is in both classes
    }
  }
  return f;
}

inline void variant_encode_fragment(const tokenizer& tok, std::string_view text, const tokenizer_variant& v,
                                    std::vector<token_id>& out) {
  if (text.empty()) return;
  std::string normalized;
  if (v.nfc && tok.pre().nfc) {
    normalized = unicode_nfc(text);
    text = normalized;
  }
  std::vector<std::uint32_t> offsets;
  const std::vector<char32_t> cps = utf8_decode(text, &offsets);
  std::vector<cp_flags> flags(cps.size());
  for (std::size_t i = 0; i < cps.size(); ++i) flags[i] = variant_flags(cps[i], v);
  std::vector<cp_range> pieces;
  pre_tokenize(tok.pre().kind, cps, flags, pieces);
  for (const cp_range& r : pieces) {
    tok.bpe().encode_piece(text.substr(offsets[r.begin], offsets[r.end] - offsets[r.begin]),
                           v.ignore_merges && tok.pre().ignore_merges, out);
  }
}

// Encodes like tokenizer::encode with the variant's deviations. Special tokens: in parse mode every
// control / user-defined token text, else only `always_matched`; leftmost-longest.
class variant_encoder {
 public:
  variant_encoder(const tokenizer& tok, tokenizer_variant v) : tok_(tok), v_(std::move(v)) {
    for (token_id id = 0; id < tok.size(); ++id) {
      const token_type t = tok.type(id);
      if (t != token_type::control && t != token_type::user_defined) continue;
      std::string s = tok.token_text(id);
      for (const auto& a : v_.always_matched) {
        if (a == s) always_.emplace_back(s, id);
      }
      all_.emplace_back(std::move(s), id);
    }
  }

  std::vector<token_id> encode(std::string_view text, special_tokens mode) const {
    const auto& specials = mode == special_tokens::parse ? all_ : always_;
    std::vector<token_id> out;
    std::size_t start = 0;
    for (std::size_t pos = 0; pos < text.size();) {
      std::size_t best = 0;
      token_id best_id = 0;
      for (const auto& [s, id] : specials) {
        if (s.size() > best && text.substr(pos, s.size()) == s) {
          best = s.size();
          best_id = id;
        }
      }
      if (best == 0) {
        ++pos;
        continue;
      }
      variant_encode_fragment(tok_, text.substr(start, pos - start), v_, out);
      out.push_back(best_id);
      pos += best;
      start = pos;
    }
    variant_encode_fragment(tok_, text.substr(start), v_, out);
    return out;
  }

 private:
  const tokenizer& tok_;
  tokenizer_variant v_;
  std::vector<std::pair<std::string, token_id>> all_;
  std::vector<std::pair<std::string, token_id>> always_;
};

}  // namespace worker::model::testing
