// An engine decorator for tests without a GPU: it presents the CPU engine as a cuda_engine, so that the
// worker takes its device-sampling path (cuda_engine::decode_sample) for decode steps. decode_sample is
// emulated the way the CUDA engine promises it behaves: append the token, then pick what the CPU sampler
// picks for that step's logits. It counts the items it sampled and can fail every decode_sample call
// that includes a "poisoned" sequence with vram_oom (changing nothing, like a real failed call).
#pragma once

#include <atomic>
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
    for (const auto& item : items) {
      if (poisoned_.contains(item.sequence)) {
        throw adapters::engine_error(adapters::engine_error_code::vram_oom, "injected: sampling scratch failed");
      }
    }
    std::vector<adapters::forward_item> steps;
    for (const auto& item : items) steps.push_back({item.sequence, std::span(&item.token, 1), false});
    const auto out = inner_->forward(steps);
    std::vector<adapters::token_id> tokens;
    for (std::size_t i = 0; i < items.size(); ++i) {
      tokens.push_back(adapters::sample_token(items[i].params, out[i].logits, items[i].history, items[i].history.size()));
    }
    sampled_items_ += items.size();
    return tokens;
  }

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
};

}  // namespace worker::test
