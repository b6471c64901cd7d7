// The byte-level BPE tokenizer of qwen2 and gpt-oss GGUF files, built from a tokenizer_vocab (read from
// GGUF metadata or imported from a HF tokenizer.json). Pipeline (model-facts.md §6.1):
//
//   validate UTF-8 -> [special tokens: split out control/user-defined token text, only when allowed]
//   -> per fragment: [NFC, Qwen only] -> pre-tokenize (pre_tokenizer.hpp) -> byte-level BPE (bpe.hpp)
//
// Special-token text in the input is plain text by default: "<|im_end|>" typed by a user becomes the
// ordinary tokens of those characters. Only callers that render a trusted template (chat formats, the
// CLI's --special) pass special_tokens::parse. docs/tokenizer.md explains why this differs from llama.cpp.
//
// A tokenizer is immutable after construction and safe to share between threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer/bpe.hpp"
#include "model/tokenizer/pre_tokenizer.hpp"
#include "model/tokenizer/tokenizer_error.hpp"
#include "model/tokenizer/utf8.hpp"
#include "model/tokenizer_vocab.hpp"

namespace worker::model {

class gguf_file;

// Whether special-token text in the input may become control / user-defined tokens.
enum class special_tokens {
  plain,  // never: the text is tokenized as ordinary characters (the default; safe for user content)
  parse,  // yes: the longest special-token text starting at each position becomes its token
};

// How decode renders tokens that are not ordinary text.
enum class special_rendering {
  skip,    // control tokens produce nothing (user-defined tokens still print their text)
  render,  // control tokens print their text, e.g. "<|im_end|>"
};

class tokenizer {
 public:
  // Throws tokenizer_error when the vocabulary is not a byte-level BPE we support.
  explicit tokenizer(const tokenizer_vocab& vocab);
  ~tokenizer();
  tokenizer(tokenizer&&) noexcept;
  tokenizer& operator=(tokenizer&&) noexcept;

  // Text -> ids. Throws utf8_error (with the byte offset) on invalid UTF-8.
  std::vector<token_id> encode(std::string_view text, special_tokens mode = special_tokens::plain) const;
  void encode_append(std::string_view text, special_tokens mode, std::vector<token_id>& out) const;

  // Ids -> bytes. Throws tokenizer_error(bad_token_id) for an id outside the vocabulary. The result is
  // the concatenation of token_bytes and need not be valid UTF-8 (a model can emit half a code point);
  // stream_decoder handles that for streaming.
  std::string decode(std::span<const token_id> ids, special_rendering mode = special_rendering::skip) const;
  // The bytes one token contributes to decode's output.
  std::string_view token_bytes(token_id id, special_rendering mode = special_rendering::skip) const;

  std::size_t size() const { return bpe_.size(); }
  bool contains(token_id id) const { return id < bpe_.size(); }
  token_type type(token_id id) const { return bpe_.type(id); }
  // The stored text of a token (byte-level text for normal tokens, as in the GGUF token list).
  std::string token_text(token_id id) const;
  // The id of the control / user-defined token with this exact text, e.g. "<|im_start|>".
  std::optional<token_id> find_special(std::string_view text) const;
  // Like find_special but throws tokenizer_error(missing_token).
  token_id require_special(std::string_view text) const;

  const pre_tokenizer_config& pre() const { return *pre_; }
  const bpe_model& bpe() const { return bpe_; }
  std::string_view pre_name() const { return pre_name_; }
  std::size_t n_merges() const { return bpe_.n_merges(); }
  std::optional<token_id> bos_id() const { return bos_id_; }
  std::optional<token_id> eos_id() const { return eos_id_; }

 private:
  struct special_matcher;
  void encode_fragment(std::string_view text, std::vector<token_id>& out) const;

  bpe_model bpe_;
  const pre_tokenizer_config* pre_;
  std::string pre_name_;
  std::unique_ptr<special_matcher> specials_;
  std::optional<token_id> bos_id_;
  std::optional<token_id> eos_id_;
};

// The tokenizer of a GGUF model (tokenizer_vocab_from_gguf + construction). Throws gguf_error for missing
// or mistyped keys, tokenizer_error for a vocabulary we cannot use.
tokenizer tokenizer_from_gguf(const gguf_file& file);

}  // namespace worker::model
