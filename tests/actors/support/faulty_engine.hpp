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

// Sequences whose engine calls must fail: poison_next_open() marks the next sequence opened (report
// each open with opened()), and closing it (closed()) clears the mark. Thread-safe.
class poisoned_slots {
 public:
  void poison_next_open() { next_ = true; }
  void opened(adapters::sequence_handle h) {
    if (!next_.exchange(false)) return;
    std::lock_guard lock(mutex_);
    slots_.insert(h.slot);
  }
  void closed(adapters::sequence_handle h) {
    std::lock_guard lock(mutex_);
    slots_.erase(h.slot);
  }
  bool contains(adapters::sequence_handle h) const {
    std::lock_guard lock(mutex_);
    return slots_.count(h.slot) != 0;
  }

 private:
  std::atomic<bool> next_{false};
  mutable std::mutex mutex_;
  std::set<std::uint32_t> slots_;
};

// The part every test decorator shares: it wraps a real engine, forwards the sequence bookkeeping to it
// and tracks poisoned sequences. Base is adapters::engine or adapters::cuda_engine (the decorators
// present the CPU engine as either). before_open() runs first in open_sequence (an injection point).
template <typename Base>
class decorated_engine : public Base {
 public:
  explicit decorated_engine(std::unique_ptr<adapters::engine> inner) : inner_(std::move(inner)) {}

  // The next sequence opened succeeds, but the decorator's failing calls fail for it (vram_oom).
  void poison_next_open() { poisoned_.poison_next_open(); }

  const adapters::model_summary& summary() const override { return inner_->summary(); }

  adapters::sequence_handle open_sequence(std::uint32_t max_positions) override {
    before_open();
    auto h = inner_->open_sequence(max_positions);
    poisoned_.opened(h);
    return h;
  }

  void close_sequence(adapters::sequence_handle sequence) noexcept override {
    poisoned_.closed(sequence);
    inner_->close_sequence(sequence);
  }

  std::uint32_t sequence_length(adapters::sequence_handle sequence) const override {
    return inner_->sequence_length(sequence);
  }

 protected:
  virtual void before_open() {}

  std::unique_ptr<adapters::engine> inner_;
  poisoned_slots poisoned_;
};

class faulty_engine final : public decorated_engine<adapters::engine> {
 public:
  using decorated_engine::decorated_engine;

  // The next `n` open_sequence calls fail with vram_oom.
  void fail_next_opens(int n) { fail_opens_ = n; }
  // (poison_next_open: every forward that includes the next sequence opened fails with vram_oom.)
  int injected_failures() const { return injected_; }

  std::vector<adapters::forward_output> forward(std::span<const adapters::forward_item> items) override {
    for (const auto& item : items) {
      if (poisoned_.contains(item.sequence)) {
        ++injected_;
        throw adapters::engine_error(adapters::engine_error_code::vram_oom, "injected: scratch allocation failed");
      }
    }
    return inner_->forward(items);
  }

 private:
  void before_open() override {
    if (fail_opens_.load() > 0) {
      --fail_opens_;
      ++injected_;
      throw adapters::engine_error(adapters::engine_error_code::vram_oom, "injected: KV cache allocation failed");
    }
  }

  std::atomic<int> fail_opens_{0};
  std::atomic<int> injected_{0};
};

}  // namespace worker::test
