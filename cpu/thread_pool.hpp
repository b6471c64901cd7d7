// A small fixed-size thread pool for the CPU reference ops. parallel_for splits an index range into
// contiguous chunks; every op gives each output element to exactly one chunk and reduces it in a fixed
// order, so results never depend on the number of threads or on how the range is split.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace worker::cpu {

class thread_pool {
 public:
  // n_threads counts the calling thread: 1 means no worker threads at all.
  explicit thread_pool(unsigned n_threads);
  ~thread_pool();
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;

  unsigned size() const { return n_threads_; }

  // Calls fn(begin, end) over disjoint chunks covering [0, n); returns when all are done. Chunks run
  // on the caller and the workers. `min_chunk` bounds the work per chunk from below so that tiny
  // ranges stay on one thread. The first exception thrown by fn is rethrown here. Calls from several
  // threads are serialized; fn must not call parallel_for on the same pool.
  void parallel_for(std::size_t n, const std::function<void(std::size_t, std::size_t)>& fn,
                    std::size_t min_chunk = 1);

 private:
  void worker_loop(unsigned index);
  void run_chunks();

  unsigned n_threads_;
  std::vector<std::thread> workers_;
  std::mutex call_mutex_;  // one parallel_for at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  bool stop_ = false;
  std::uint64_t generation_ = 0;  // bumped for every parallel_for that uses the workers
  unsigned busy_ = 0;             // workers still running the current generation

  // The current job (valid while busy_ > 0 or the caller is running chunks).
  const std::function<void(std::size_t, std::size_t)>* fn_ = nullptr;
  std::size_t n_ = 0;
  std::size_t chunk_ = 0;
  std::size_t next_chunk_ = 0;  // guarded by mutex_
  std::exception_ptr error_;
};

// Threads to use by default: hardware concurrency, at least 1.
unsigned default_thread_count();

}  // namespace worker::cpu
