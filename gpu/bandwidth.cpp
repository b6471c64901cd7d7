// Copy-bandwidth measurements with CUDA events (see bandwidth.hpp).
#include "gpu/bandwidth.hpp"

#include <cuda_runtime_api.h>

#include "gpu/event_timing.hpp"
#include "gpu/gpu_error.hpp"

namespace worker::gpu {

bandwidth_result measure_d2d_bandwidth(std::size_t bytes, int reps) {
  void *src = nullptr, *dst = nullptr;
  cudaStream_t s = nullptr;
  WORKER_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  WORKER_CUDA_CHECK(cudaMalloc(&src, bytes));
  WORKER_CUDA_CHECK(cudaMalloc(&dst, bytes));
  WORKER_CUDA_CHECK(cudaMemsetAsync(src, 0x5A, bytes, s));  // not zeros: see METHOD.md
  bandwidth_result r;
  r.bytes = 2 * bytes;
  r.seconds = median_stream_seconds(reps, s, [&] { WORKER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s)); });
  r.gb_per_s = static_cast<double>(r.bytes) / r.seconds / 1e9;
  cudaFree(src);
  cudaFree(dst);
  cudaStreamDestroy(s);
  return r;
}

bandwidth_result measure_h2d_bandwidth(std::size_t bytes, int reps) {
  void *host = nullptr, *dst = nullptr;
  cudaStream_t s = nullptr;
  WORKER_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  WORKER_CUDA_CHECK(cudaMallocHost(&host, bytes));
  WORKER_CUDA_CHECK(cudaMalloc(&dst, bytes));
  std::fill_n(static_cast<unsigned char*>(host), bytes, static_cast<unsigned char>(0x5A));
  bandwidth_result r;
  r.bytes = bytes;
  r.seconds = median_stream_seconds(reps, s, [&] { WORKER_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, s)); });
  r.gb_per_s = static_cast<double>(r.bytes) / r.seconds / 1e9;
  cudaFreeHost(host);
  cudaFree(dst);
  cudaStreamDestroy(s);
  return r;
}

}  // namespace worker::gpu
