// Copy-bandwidth measurements with CUDA events (see bandwidth.hpp).
#include "gpu/bandwidth.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "gpu/gpu_error.hpp"

namespace worker::gpu {

namespace {

template <typename F>
double median_seconds(int reps, cudaStream_t s, F&& op) {
  cudaEvent_t a, b;
  WORKER_CUDA_CHECK(cudaEventCreate(&a));
  WORKER_CUDA_CHECK(cudaEventCreate(&b));
  op();  // warm-up
  WORKER_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    WORKER_CUDA_CHECK(cudaEventRecord(a, s));
    op();
    WORKER_CUDA_CHECK(cudaEventRecord(b, s));
    WORKER_CUDA_CHECK(cudaEventSynchronize(b));
    float t = 0;
    WORKER_CUDA_CHECK(cudaEventElapsedTime(&t, a, b));
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] / 1e3;
}

}  // namespace

bandwidth_result measure_d2d_bandwidth(std::size_t bytes, int reps) {
  void *src = nullptr, *dst = nullptr;
  cudaStream_t s = nullptr;
  WORKER_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  WORKER_CUDA_CHECK(cudaMalloc(&src, bytes));
  WORKER_CUDA_CHECK(cudaMalloc(&dst, bytes));
  WORKER_CUDA_CHECK(cudaMemsetAsync(src, 0x5A, bytes, s));  // not zeros: see METHOD.md
  bandwidth_result r;
  r.bytes = 2 * bytes;
  r.seconds = median_seconds(reps, s, [&] { WORKER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s)); });
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
  r.seconds = median_seconds(reps, s, [&] { WORKER_CUDA_CHECK(cudaMemcpyAsync(dst, host, bytes, cudaMemcpyHostToDevice, s)); });
  r.gb_per_s = static_cast<double>(r.bytes) / r.seconds / 1e9;
  cudaFreeHost(host);
  cudaFree(dst);
  cudaStreamDestroy(s);
  return r;
}

}  // namespace worker::gpu
