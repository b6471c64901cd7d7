// Timing of work enqueued on a stream with CUDA events: one warm-up, then `reps` timed repetitions,
// the median time of one. Shared by the bandwidth probes (bandwidth.cpp) and the launch-latency probes
// (launch_latency.cu), so every ceiling the bench prints is measured the same way.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "gpu/gpu_error.hpp"

namespace worker::gpu {

// Seconds of one call of `enqueue` (which enqueues work on `stream`): the median of `reps` ≥ 1.
template <typename F>
double median_stream_seconds(int reps, cudaStream_t stream, F&& enqueue) {
  struct events {
    cudaEvent_t begin = nullptr, end = nullptr;
    events() {
      WORKER_CUDA_CHECK(cudaEventCreate(&begin));
      WORKER_CUDA_CHECK(cudaEventCreate(&end));
    }
    ~events() {
      cudaEventDestroy(begin);
      cudaEventDestroy(end);
    }
    events(const events&) = delete;
    events& operator=(const events&) = delete;
  } ev;
  enqueue();  // warm-up
  WORKER_CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<float> ms;
  for (int i = 0; i < std::max(1, reps); ++i) {
    WORKER_CUDA_CHECK(cudaEventRecord(ev.begin, stream));
    enqueue();
    WORKER_CUDA_CHECK(cudaEventRecord(ev.end, stream));
    WORKER_CUDA_CHECK(cudaEventSynchronize(ev.end));
    float t = 0.0f;
    WORKER_CUDA_CHECK(cudaEventElapsedTime(&t, ev.begin, ev.end));
    ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] / 1e3;
}

}  // namespace worker::gpu
