// Byte-level BPE: vocabulary tables and the merge loop. See bpe.hpp.
//
// Load time matters (200k tokens, 446k merges for o200k): both lookup tables are flat open-addressing
// arrays sized once, filled without per-entry allocation.
#include "model/tokenizer/bpe.hpp"

#include <algorithm>
#include <bit>
#include <functional>

#include "model/tokenizer/byte_level.hpp"
#include "model/tokenizer/tokenizer_error.hpp"

namespace worker::model {

namespace {

constexpr token_id k_none = ~token_id{0};
constexpr std::uint64_t k_empty_merge = ~std::uint64_t{0};

std::size_t table_size_for(std::size_t n) { return std::bit_ceil(std::max<std::size_t>(16, n * 2)); }

// FNV-1a over the bytes, then mixed: tokens are short (a few bytes), so this beats a block hash. The state
// can continue over a second string, so hash(a + b) needs no concatenation.
constexpr std::uint64_t k_fnv_start = 0xCBF29CE484222325ULL;
std::uint64_t fnv_continue(std::uint64_t h, std::string_view s) {
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ULL;
  return h;
}
std::uint64_t fnv_finish(std::uint64_t h) {
  h ^= h >> 32;
  return h * 0x9E3779B97F4A7C15ULL;
}
std::uint64_t hash_bytes(std::string_view s) { return fnv_finish(fnv_continue(k_fnv_start, s)); }

// A table slot packs the key's hash tag (high 32 bits) and the token id (low 32 bits), so most probes
// are decided without touching the token bytes.
constexpr std::uint64_t k_empty_slot = ~std::uint64_t{0};
std::uint64_t make_slot(std::uint64_t hash, token_id id) { return (hash & 0xFFFFFFFF00000000ULL) | id; }

std::size_t hash_pair(std::uint64_t key) {
  key ^= key >> 31;
  key *= 0x9E3779B97F4A7C15ULL;
  key ^= key >> 29;
  return static_cast<std::size_t>(key);
}

}  // namespace

bpe_model::bpe_model(const tokenizer_vocab& vocab) {
  const std::size_t n = vocab.tokens.size();
  if (vocab.token_types.size() != n) {
    throw tokenizer_error(tokenizer_error_code::bad_vocab,
                          std::to_string(n) + " tokens but " + std::to_string(vocab.token_types.size()) + " token types");
  }
  if (n >= k_max_tokens) throw tokenizer_error(tokenizer_error_code::bad_vocab, "too many tokens");
  types_ = vocab.token_types;

  std::size_t total = 0;
  for (const auto& t : vocab.tokens) total += t.size();
  arena_.reserve(total);
  offsets_.reserve(n + 1);
  for (std::size_t id = 0; id < n; ++id) {
    offsets_.push_back(static_cast<std::uint32_t>(arena_.size()));
    const std::string& text = vocab.tokens[id];
    if (types_[id] == token_type::normal) {
      if (!byte_level_decode_append(text, arena_)) {
        throw tokenizer_error(tokenizer_error_code::bad_vocab,
                              "normal token " + std::to_string(id) + " is not byte-level text");
      }
    } else {
      arena_ += text;  // control / user-defined / unused tokens stand for their text itself
    }
  }
  offsets_.push_back(static_cast<std::uint32_t>(arena_.size()));

  normal_slots_.assign(table_size_for(n), k_empty_slot);
  for (token_id id = 0; id < n; ++id) {
    if (types_[id] == token_type::normal && offsets_[id + 1] > offsets_[id]) insert_normal(id);
  }
  for (unsigned b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    byte_token_[b] = find_normal(std::string_view(&c, 1));
    if (byte_token_[b] == k_none) {
      throw tokenizer_error(tokenizer_error_code::bad_vocab, "no token for byte " + std::to_string(b));
    }
  }

  // Merges are resolved in blocks: parse and hash a block, prefetch the table slots it will probe, then
  // look them up. The tables are larger than the caches, so this hides most of the memory latency.
  const std::size_t n_merges = vocab.merges.size();
  if (n_merges >= k_max_merges) throw tokenizer_error(tokenizer_error_code::bad_merge, "too many merges");
  merge_result_.assign(n_merges, k_none);
  merge_slots_.assign(table_size_for(n_merges), k_empty_merge);
  constexpr std::size_t k_block = 32;
  struct pending {
    std::uint32_t left_begin, left_end, right_end;  // into `raw`: left bytes, then right bytes
    std::uint64_t h_left, h_right, h_joined;
  };
  std::string raw;
  std::vector<pending> block;
  block.reserve(k_block);
  std::vector<std::uint64_t> keys(k_block);
  const std::size_t normal_mask = normal_slots_.size() - 1;
  const std::size_t merge_mask = merge_slots_.size() - 1;
  for (std::size_t base = 0; base < n_merges; base += k_block) {
    const std::size_t end = std::min(n_merges, base + k_block);
    raw.clear();
    block.clear();
    for (std::size_t rank = base; rank < end; ++rank) {
      const std::string_view m = vocab.merges[rank];
      // "A B": A is never empty, so split at the first space after position 0 (llama.cpp does the same).
      const std::size_t space = m.find(' ', 1);
      pending p{};
      p.left_begin = static_cast<std::uint32_t>(raw.size());
      const bool ok_left = space != std::string_view::npos && byte_level_decode_append(m.substr(0, space), raw);
      p.left_end = static_cast<std::uint32_t>(raw.size());
      const bool ok_right = ok_left && byte_level_decode_append(m.substr(space + 1), raw);
      p.right_end = static_cast<std::uint32_t>(raw.size());
      if (!ok_right || p.left_end == p.left_begin || p.right_end == p.left_end) {
        throw tokenizer_error(tokenizer_error_code::bad_merge,
                              "merge " + std::to_string(rank) + " '" + std::string(m) + "' is not two byte-level tokens");
      }
      const std::string_view l(raw.data() + p.left_begin, p.left_end - p.left_begin);
      const std::string_view r(raw.data() + p.left_end, p.right_end - p.left_end);
      const std::uint64_t fl = fnv_continue(k_fnv_start, l);
      p.h_left = fnv_finish(fl);
      p.h_right = hash_bytes(r);
      p.h_joined = fnv_finish(fnv_continue(fl, r));
      __builtin_prefetch(&normal_slots_[p.h_left & normal_mask]);
      __builtin_prefetch(&normal_slots_[p.h_right & normal_mask]);
      __builtin_prefetch(&normal_slots_[p.h_joined & normal_mask]);
      block.push_back(p);
    }
    for (std::size_t i = 0; i < block.size(); ++i) {
      const pending& p = block[i];
      const std::size_t rank = base + i;
      const token_id left = find_normal(std::string_view(raw.data() + p.left_begin, p.left_end - p.left_begin), p.h_left);
      const token_id right = find_normal(std::string_view(raw.data() + p.left_end, p.right_end - p.left_end), p.h_right);
      const token_id result =
          find_normal(std::string_view(raw.data() + p.left_begin, p.right_end - p.left_begin), p.h_joined);
      if (left == k_none || right == k_none || result == k_none) {
        throw tokenizer_error(tokenizer_error_code::bad_merge, "merge " + std::to_string(rank) + " '" +
                                                                   vocab.merges[rank] + "' names a string that is not a token");
      }
      merge_result_[rank] = result;
      keys[i] = (std::uint64_t{left} << k_id_bits) | right;
      __builtin_prefetch(&merge_slots_[hash_pair(keys[i]) & merge_mask]);
    }
    for (std::size_t i = 0; i < block.size(); ++i) insert_merge(keys[i], static_cast<std::uint32_t>(base + i));
  }
}

void bpe_model::insert_normal(token_id id) {
  const std::string_view key = bytes(id);
  const std::uint64_t h = hash_bytes(key);
  const std::size_t mask = normal_slots_.size() - 1;
  for (std::size_t slot = h & mask;; slot = (slot + 1) & mask) {
    const std::uint64_t v = normal_slots_[slot];
    if (v == k_empty_slot) {
      normal_slots_[slot] = make_slot(h, id);
      return;
    }
    if (make_slot(h, 0) == make_slot(v, 0) && bytes(static_cast<token_id>(v)) == key) return;  // lowest id wins
  }
}

token_id bpe_model::find_normal(std::string_view key) const { return find_normal(key, hash_bytes(key)); }

token_id bpe_model::find_normal(std::string_view key, std::uint64_t h) const {
  const std::size_t mask = normal_slots_.size() - 1;
  for (std::size_t slot = h & mask;; slot = (slot + 1) & mask) {
    const std::uint64_t v = normal_slots_[slot];
    if (v == k_empty_slot) return k_none;
    if (make_slot(h, 0) == make_slot(v, 0) && bytes(static_cast<token_id>(v)) == key) return static_cast<token_id>(v);
  }
}

// A merge slot packs (left << 21 | right) << 22 | rank; the result token is merge_result_[rank].
void bpe_model::insert_merge(std::uint64_t pair, std::uint32_t rank) {
  const std::size_t mask = merge_slots_.size() - 1;
  for (std::size_t slot = hash_pair(pair) & mask;; slot = (slot + 1) & mask) {
    const std::uint64_t v = merge_slots_[slot];
    if (v == k_empty_merge) {
      merge_slots_[slot] = (pair << k_rank_bits) | rank;
      ++n_merges_;
      return;
    }
    if ((v >> k_rank_bits) == pair) return;  // a repeated pair keeps its first (lowest) rank, as in HF
  }
}

bool bpe_model::find_merge(token_id left, token_id right, std::uint32_t& rank, token_id& result) const {
  const std::uint64_t pair = (std::uint64_t{left} << k_id_bits) | right;
  const std::size_t mask = merge_slots_.size() - 1;
  for (std::size_t slot = hash_pair(pair) & mask;; slot = (slot + 1) & mask) {
    const std::uint64_t v = merge_slots_[slot];
    if (v == k_empty_merge) return false;
    if ((v >> k_rank_bits) == pair) {
      rank = static_cast<std::uint32_t>(v & ((std::uint64_t{1} << k_rank_bits) - 1));
      result = merge_result_[rank];
      return true;
    }
  }
}

void bpe_model::encode_piece(std::string_view piece, bool ignore_merges, std::vector<token_id>& out) const {
  if (piece.empty()) return;
  if (ignore_merges) {
    const token_id whole = find_normal(piece);
    if (whole != k_none) {
      out.push_back(whole);
      return;
    }
  }
  const auto n = static_cast<std::uint32_t>(piece.size());
  if (n == 1) {
    out.push_back(byte_token_[static_cast<unsigned char>(piece[0])]);
    return;
  }

  // A doubly linked list of symbols (one per byte at first) and a min-heap of candidate merges ordered by
  // (rank, position): repeatedly merging the lowest-rank adjacent pair, leftmost first, is exactly the
  // reference algorithm. A merged symbol keeps the left one's position; the right one is marked dead.
  struct symbol {
    token_id id;
    std::int32_t prev;
    std::int32_t next;
  };
  struct candidate {
    std::uint32_t rank;
    std::uint32_t pos;
    token_id left, right, result;
    bool operator>(const candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<symbol> syms;
  thread_local std::vector<candidate> heap;
  syms.resize(n);
  heap.clear();
  for (std::uint32_t i = 0; i < n; ++i) {
    syms[i] = symbol{byte_token_[static_cast<unsigned char>(piece[i])], static_cast<std::int32_t>(i) - 1,
                     i + 1 < n ? static_cast<std::int32_t>(i + 1) : -1};
  }
  auto consider = [&](std::int32_t pos) {
    const std::int32_t next = syms[pos].next;
    if (next < 0) return;
    std::uint32_t rank;
    token_id result;
    if (find_merge(syms[pos].id, syms[next].id, rank, result)) {
      heap.push_back(candidate{rank, static_cast<std::uint32_t>(pos), syms[pos].id, syms[next].id, result});
      std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    }
  };
  for (std::uint32_t i = 0; i + 1 < n; ++i) consider(static_cast<std::int32_t>(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const candidate c = heap.back();
    heap.pop_back();
    symbol& left = syms[c.pos];
    if (left.id != c.left || left.next < 0) continue;  // stale: the left symbol changed or died
    symbol& right = syms[left.next];
    if (right.id != c.right) continue;                 // stale: the right neighbour changed
    left.id = c.result;
    right.id = k_none;
    left.next = right.next;
    if (left.next >= 0) syms[left.next].prev = static_cast<std::int32_t>(c.pos);
    if (left.prev >= 0) consider(left.prev);
    consider(static_cast<std::int32_t>(c.pos));
  }
  for (std::int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

}  // namespace worker::model
