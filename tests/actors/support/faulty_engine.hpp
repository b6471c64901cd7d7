// An engine decorator for tests: forwards to the real CPU engine and fails allocations on demand,
// throwing the same typed error a device allocator throws (engine_error vram_oom). Two injection points:
// the next open_sequence() (KV cache allocation), and every forward() that includes a "poisoned"
// sequence (scratch allocation for that job). Like a real failed allocation, a throwing call leaves
// every sequence unchanged.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <set>

#include "adapters/engine.hpp"

namespace worker::test {

class faulty_engine final : public adapters::engine {
 public:
  explicit faulty_engine(std::unique_ptr<adapters::engine> inner) : inner_(std::move(inner)) {}

  // The next `n` open_sequence calls fail with vram_oom.
  void fail_next_opens(int n) { fail_opens_ = n; }
  // The next sequence opened succeeds, but every forward that includes it fails with vram_oom.
  void poison_next_open() { poison_next_ = true; }
  int injected_failures() const { return injected_; }

  const adapters::model_summary& summary() const override { return inner_->summary(); }

  adapters::sequence_handle open_sequence(std::uint32_t max_positions) override {
    if (fail_opens_.load() > 0) {
      --fail_opens_;
      ++injected_;
      throw adapters::engine_error(adapters::engine_error_code::vram_oom,
                                   "injected: KV cache allocation failed");
    }
    auto h = inner_->open_sequence(max_positions);
    if (poison_next_.exchange(false)) {
      std::lock_guard lock(mutex_);
      poisoned_.insert(h.slot);
    }
    return h;
  }

  void close_sequence(adapters::sequence_handle sequence) noexcept override {
    {
      std::lock_guard lock(mutex_);
      poisoned_.erase(sequence.slot);
    }
    inner_->close_sequence(sequence);
  }

  std::uint32_t sequence_length(adapters::sequence_handle sequence) const override {
    return inner_->sequence_length(sequence);
  }

  std::vector<adapters::forward_output> forward(std::span<const adapters::forward_item> items) override {
    {
      std::lock_guard lock(mutex_);
      for (const auto& item : items) {
        if (poisoned_.count(item.sequence.slot) != 0) {
          ++injected_;
          throw adapters::engine_error(adapters::engine_error_code::vram_oom,
                                       "injected: scratch allocation failed");
        }
      }
    }
    return inner_->forward(items);
  }

 private:
  std::unique_ptr<adapters::engine> inner_;
  std::atomic<int> fail_opens_{0};
  std::atomic<bool> poison_next_{false};
  std::atomic<int> injected_{0};
  std::mutex mutex_;
  std::set<std::uint32_t> poisoned_;
};

}  // namespace worker::test
