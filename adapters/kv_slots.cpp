// KV-slot bookkeeping shared by the engines (see kv_slots.hpp).
#include "adapters/kv_slots.hpp"

#include <string>

namespace worker::adapters {

kv_slot_table::kv_slot_table(std::uint32_t slots, std::uint32_t context_limit, std::uint32_t vocab)
    : slots_(slots), context_limit_(context_limit), vocab_(vocab) {}

void kv_slot_table::check_open(std::uint32_t max_positions) const {
  if (max_positions == 0) throw engine_error(engine_error_code::invalid_argument, "max_positions must be positive");
  if (max_positions > context_limit_) {
    throw engine_error(engine_error_code::context_overflow, "requested " + std::to_string(max_positions) +
                                                                " positions, the context limit is " +
                                                                std::to_string(context_limit_));
  }
}

std::uint32_t kv_slot_table::free_slot() const {
  for (std::uint32_t i = 0; i < slots_.size(); ++i) {
    if (!slots_[i].open) return i;
  }
  throw engine_error(engine_error_code::kv_exhausted, "all " + std::to_string(slots_.size()) + " sequence slots are in use");
}

void kv_slot_table::open(std::uint32_t slot, std::uint32_t capacity) {
  slots_.at(slot) = kv_slot_state{true, capacity, 0};
}

bool kv_slot_table::close(sequence_handle sequence) noexcept {
  if (!is_open(sequence)) return false;
  slots_[sequence.slot] = kv_slot_state{};
  return true;
}

bool kv_slot_table::is_open(sequence_handle sequence) const noexcept {
  return sequence.valid() && sequence.slot < slots_.size() && slots_[sequence.slot].open;
}

const kv_slot_state& kv_slot_table::at(sequence_handle sequence) const {
  if (!is_open(sequence)) throw engine_error(engine_error_code::invalid_argument, "unknown sequence");
  return slots_[sequence.slot];
}

void kv_slot_table::validate(std::span<const forward_item> items) const {
  if (items.empty()) throw engine_error(engine_error_code::invalid_argument, "forward with no items");
  std::vector<bool> seen(slots_.size(), false);
  for (const auto& item : items) {
    const kv_slot_state& s = at(item.sequence);
    if (seen[item.sequence.slot]) {
      throw engine_error(engine_error_code::invalid_argument, "a sequence appears twice in one forward call");
    }
    seen[item.sequence.slot] = true;
    if (item.tokens.empty()) throw engine_error(engine_error_code::invalid_argument, "forward item with no tokens");
    for (const token_id id : item.tokens) {
      if (id < 0 || static_cast<std::uint32_t>(id) >= vocab_) {
        throw engine_error(engine_error_code::invalid_argument,
                           "token id " + std::to_string(id) + " outside the vocabulary of " + std::to_string(vocab_));
      }
    }
    if (std::uint64_t{s.length} + item.tokens.size() > s.capacity) {
      throw engine_error(engine_error_code::context_overflow,
                         "sequence holds " + std::to_string(s.length) + " tokens; " + std::to_string(item.tokens.size()) +
                             " more exceed its " + std::to_string(s.capacity) + " reserved positions");
    }
  }
}

void kv_slot_table::commit(std::span<const forward_item> items) {
  for (const auto& item : items) grow(item.sequence, static_cast<std::uint32_t>(item.tokens.size()));
}

void kv_slot_table::grow(sequence_handle sequence, std::uint32_t tokens) {
  slots_.at(sequence.slot).length += tokens;
}

}  // namespace worker::adapters
