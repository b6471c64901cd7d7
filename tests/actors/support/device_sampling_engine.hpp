// An engine decorator for tests without a GPU: it presents the CPU engine as a cuda_engine, so that the
// worker takes its device-sampling path (cuda_engine::decode_enqueue / decode_collect) for decode
// steps. A step is emulated the way the CUDA engine promises it behaves: append the token (or the one
// the sequence's previous step sampled), then pick what the CPU sampler picks for that step's logits.
// It counts the items it sampled and can fail every step that includes a "poisoned" sequence with
// vram_oom (changing nothing, like a real failed call).
#pragma once

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>

#include "adapters/cuda_engine.hpp"
#include "adapters/sampler.hpp"
#include "tests/actors/support/faulty_engine.hpp"

namespace worker::test {

class device_sampling_engine final : public decorated_engine<adapters::cuda_engine> {
 public:
  using decorated_engine::decorated_engine;

  // (poison_next_open: every decode_sample that includes the next sequence opened fails with vram_oom.)
  std::uint64_t sampled_items() const { return sampled_items_; }
  std::uint64_t forward_items() const { return forward_items_; }

  std::vector<adapters::forward_output> forward(std::span<const adapters::forward_item> items) override {
    forward_items_ += items.size();
    return inner_->forward(items);
  }

  std::vector<adapters::token_id> decode_sample(std::span<const adapters::cuda_sample_item> items) override {
    return decode_collect(decode_enqueue(items));
  }

  // Runs the step at once; collect hands its tokens over. A token_from_previous_step item takes the
  // token this decorator last sampled for its sequence, as the device would.
  adapters::decode_ticket decode_enqueue(std::span<const adapters::cuda_sample_item> items) override {
    for (const auto& item : items) {
      if (poisoned_.contains(item.sequence)) {
        throw adapters::engine_error(adapters::engine_error_code::vram_oom, "injected: sampling scratch failed");
      }
      if (item.token_from_previous_step && !last_sampled_.contains(item.sequence.slot)) {
        throw adapters::engine_error(adapters::engine_error_code::invalid_argument, "no previous step to take the token from");
      }
    }
    std::vector<adapters::token_id> inputs;
    for (const auto& item : items) inputs.push_back(item.token_from_previous_step ? last_sampled_.at(item.sequence.slot) : item.token);
    std::vector<adapters::forward_item> steps;
    for (std::size_t i = 0; i < items.size(); ++i) steps.push_back({items[i].sequence, std::span(&inputs[i], 1), false});
    const auto out = inner_->forward(steps);
    std::vector<adapters::token_id> tokens;
    for (std::size_t i = 0; i < items.size(); ++i) {
      std::vector<adapters::token_id> history(items[i].history.begin(), items[i].history.end());
      if (items[i].token_from_previous_step) history.push_back(inputs[i]);
      tokens.push_back(adapters::sample_token(items[i].params, out[i].logits, history, history.size()));
      last_sampled_[items[i].sequence.slot] = tokens.back();
    }
    sampled_items_ += items.size();
    if (std::any_of(items.begin(), items.end(), [](const auto& it) { return it.token_from_previous_step; })) {
      ++pipelined_steps_;
    }
    const adapters::decode_ticket ticket = next_ticket_++;
    results_[ticket] = std::move(tokens);
    return ticket;
  }

  std::vector<adapters::token_id> decode_collect(adapters::decode_ticket ticket) override {
    const auto it = results_.find(ticket);
    if (it == results_.end()) throw adapters::engine_error(adapters::engine_error_code::invalid_argument, "ticket not in flight");
    auto tokens = std::move(it->second);
    results_.erase(it);
    return tokens;
  }

  // Steps whose input token came from the step before (the worker's pipelined decode).
  std::uint64_t pipelined_steps() const { return pipelined_steps_; }

  // Not used by the worker's inference path.
  const adapters::cuda_load_report& load_report() const override { return report_; }
  std::vector<adapters::cuda_allocation> allocations() const override { return {}; }
  std::uint64_t vram_bytes() const override { return 0; }
  int device_index() const override { return 0; }
  void inject_kv_allocation_failure(bool) override {}
  std::uint64_t decode_bytes_per_step(std::span<const adapters::sequence_handle>) const override { return 0; }

 private:
  adapters::cuda_load_report report_;
  std::atomic<std::uint64_t> sampled_items_{0};
  std::atomic<std::uint64_t> forward_items_{0};
  std::atomic<std::uint64_t> pipelined_steps_{0};
  std::map<std::uint32_t, adapters::token_id> last_sampled_;  // by KV slot
  std::map<adapters::decode_ticket, std::vector<adapters::token_id>> results_;
  adapters::decode_ticket next_ticket_ = 1;
};

}  // namespace worker::test
