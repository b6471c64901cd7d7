// The KV-slot bookkeeping every engine shares: which slots are open, each one's reserved length
// (capacity, in positions) and the tokens it holds, and the checks of the engine interface built on
// them (open_sequence arguments, forward items). The memory behind a slot is the engine's own (host
// floats, device blocks); an engine keeps it in a vector indexed like the slots.
//
// Not thread-safe: engines are called from one thread at a time (adapters/engine.hpp).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "adapters/engine.hpp"

namespace worker::adapters {

struct kv_slot_state {
  bool open = false;
  std::uint32_t capacity = 0;  // positions reserved at open
  std::uint32_t length = 0;    // tokens held
};

class kv_slot_table {
 public:
  kv_slot_table() = default;  // no slots (an engine assigns the real table once it knows its limits)
  // `slots` slots; sequences may reserve up to `context_limit` positions; token ids below `vocab`.
  kv_slot_table(std::uint32_t slots, std::uint32_t context_limit, std::uint32_t vocab);

  std::uint32_t size() const { return static_cast<std::uint32_t>(slots_.size()); }
  std::uint32_t context_limit() const { return context_limit_; }

  // open_sequence's argument checks: invalid_argument for 0, context_overflow above the context limit.
  void check_open(std::uint32_t max_positions) const;
  // The lowest free slot; throws kv_exhausted when all are in use.
  std::uint32_t free_slot() const;
  // Marks `slot` open with `capacity` positions and no tokens.
  void open(std::uint32_t slot, std::uint32_t capacity);
  // True (and the slot is free again) when `sequence` was open; false for an invalid or closed handle.
  bool close(sequence_handle sequence) noexcept;

  bool is_open(sequence_handle sequence) const noexcept;
  // The open slot of `sequence`; throws invalid_argument ("unknown sequence") otherwise.
  const kv_slot_state& at(sequence_handle sequence) const;

  // forward()'s checks, before any work: items non-empty, each sequence open and named once, tokens
  // non-empty and inside the vocabulary, and room for them (context_overflow).
  void validate(std::span<const forward_item> items) const;
  // Grows every item's sequence by its token count (after the whole call succeeded).
  void commit(std::span<const forward_item> items);
  // Grows one sequence by `tokens`.
  void grow(sequence_handle sequence, std::uint32_t tokens);

 private:
  std::vector<kv_slot_state> slots_;
  std::uint32_t context_limit_ = 0;
  std::uint32_t vocab_ = 0;
};

}  // namespace worker::adapters
