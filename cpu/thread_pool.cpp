// Fixed-size thread pool: workers sleep on a condition variable and pull chunk indices of the current
// parallel_for under one mutex (chunks are coarse, so the lock is not contended in practice).
#include "cpu/thread_pool.hpp"

#include <algorithm>
#include <exception>

namespace worker::cpu {

unsigned default_thread_count() {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

thread_pool::thread_pool(unsigned n_threads) : n_threads_(std::max(1u, n_threads)) {
  workers_.reserve(n_threads_ - 1);
  for (unsigned i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

thread_pool::~thread_pool() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void thread_pool::run_chunks() {
  for (;;) {
    std::size_t begin;
    {
      std::lock_guard lock(mutex_);
      begin = next_chunk_ * chunk_;
      if (begin >= n_) return;
      ++next_chunk_;
    }
    const std::size_t end = std::min(n_, begin + chunk_);
    try {
      (*fn_)(begin, end);
    } catch (...) {
      std::lock_guard lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void thread_pool::worker_loop(unsigned) {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    run_chunks();
    {
      std::lock_guard lock(mutex_);
      if (--busy_ == 0) done_.notify_all();
    }
  }
}

void thread_pool::parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& fn,
                               std::size_t min_chunk) {
  if (n == 0) return;
  min_chunk = std::max<std::size_t>(1, min_chunk);
  // A few chunks per thread balance uneven rows without making the lock hot.
  const std::size_t target_chunks = static_cast<std::size_t>(n_threads_) * 4;
  const std::size_t chunk = std::max(min_chunk, (n + target_chunks - 1) / target_chunks);
  if (n_threads_ == 1 || chunk >= n) {
    fn(0, n);
    return;
  }
  std::lock_guard call_lock(call_mutex_);
  {
    std::lock_guard lock(mutex_);
    fn_ = &fn;
    n_ = n;
    chunk_ = chunk;
    next_chunk_ = 0;
    error_ = nullptr;
    busy_ = static_cast<unsigned>(workers_.size());
    ++generation_;
  }
  wake_.notify_all();
  run_chunks();
  std::exception_ptr error;
  {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return busy_ == 0; });
    fn_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace worker::cpu
