// Byte-level BPE model (model-facts.md §6.1 steps 3-5): the raw bytes of every token, the merge table
// ranked by position in tokenizer.ggml.merges, and the merge loop that turns one pre-tokenized piece into
// token ids. Symbols are token ids from the start (every single byte is a token in a byte-level vocab), so
// the loop compares integers, never strings.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer_vocab.hpp"

namespace worker::model {

using token_id = std::uint32_t;

class bpe_model {
 public:
  // Builds from the vocabulary; throws tokenizer_error (tokenizer.hpp) when a normal token is not
  // byte-level text, a byte has no single-byte token, or a merge names unknown tokens.
  explicit bpe_model(const tokenizer_vocab& vocab);

  std::size_t size() const { return types_.size(); }
  token_type type(token_id id) const { return types_[id]; }
  // The bytes a token stands for: decoded byte-level text for normal tokens, the text itself otherwise.
  std::string_view bytes(token_id id) const {
    return std::string_view(arena_).substr(offsets_[id], offsets_[id + 1] - offsets_[id]);
  }
  std::size_t n_merges() const { return n_merges_; }

  // The normal token whose bytes are exactly `bytes`, or UINT32_MAX.
  token_id find_normal(std::string_view bytes) const;

  // Appends the ids of one piece (raw bytes, non-empty). With `ignore_merges`, a piece that is itself a
  // normal token is emitted whole (tiktoken / HF "ignore_merges": true).
  void encode_piece(std::string_view piece, bool ignore_merges, std::vector<token_id>& out) const;

 private:
  // Merge slots pack (left << 21 | right) << 22 | rank into 64 bits: vocabularies up to 2^21 - 1 tokens,
  // up to 2^22 merges (o200k: 201,088 and 446,189).
  static constexpr unsigned k_id_bits = 21;
  static constexpr unsigned k_rank_bits = 22;
  static constexpr std::size_t k_max_tokens = (std::size_t{1} << k_id_bits) - 1;
  static constexpr std::size_t k_max_merges = std::size_t{1} << k_rank_bits;

  token_id find_normal(std::string_view bytes, std::uint64_t hash) const;
  bool find_merge(token_id left, token_id right, std::uint32_t& rank, token_id& result) const;
  void insert_merge(std::uint64_t pair, std::uint32_t rank);
  void insert_normal(token_id id);

  std::string arena_;                  // every token's bytes, back to back
  std::vector<std::uint32_t> offsets_; // [n_tokens + 1] into arena_
  std::vector<token_type> types_;      // [n_tokens]
  std::vector<std::uint64_t> normal_slots_;  // open-addressing table: bytes -> (hash tag, normal token id)
  std::vector<std::uint64_t> merge_slots_;  // open-addressing table: (left, right) -> rank
  std::vector<token_id> merge_result_;       // [n_merges] rank -> merged token
  std::size_t n_merges_ = 0;
  token_id byte_token_[256];           // the token of each single byte
};

}  // namespace worker::model
