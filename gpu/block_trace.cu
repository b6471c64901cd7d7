// Host side of block_trace.hpp.
#include "gpu/block_trace.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <mutex>

#include "gpu/block_trace.cuh"
#include "gpu/gpu_error.hpp"

namespace worker::gpu {

namespace bt_detail {

namespace {
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::vector<setter>& registry() {
  static std::vector<setter> r;
  return r;
}
}  // namespace

bool register_setter(setter s) {
  const std::lock_guard<std::mutex> lock(registry_mutex());
  registry().push_back(s);
  return true;
}

}  // namespace bt_detail

namespace {
struct trace_buffers {
  block_trace_record* buf = nullptr;
  unsigned int* count = nullptr;
  std::size_t capacity = 0;
} g_buffers;

void point_all(const bt_detail::state& s) {
  const std::lock_guard<std::mutex> lock(bt_detail::registry_mutex());
  for (const bt_detail::setter set : bt_detail::registry()) set(s);
  WORKER_CUDA_CHECK(cudaGetLastError());
}
}  // namespace

const char* block_trace_kernel_name(std::uint16_t kernel) {
  switch (static_cast<traced_kernel>(kernel)) {
    case traced_kernel::rmsnorm: return "rmsnorm";
    case traced_kernel::attn_split: return "attn_split";
    case traced_kernel::attn_merge: return "attn_merge";
    case traced_kernel::quantize_q8: return "quantize_q8";
    case traced_kernel::matvec_fanout: return "matvec_fanout";
    case traced_kernel::gather: return "gather";
    case traced_kernel::argmax: return "argmax";
  }
  return "?";
}

bool block_trace_compiled() {
#if defined(WORKER_ORCD_BLOCK_TRACE)
  return true;
#else
  return false;
#endif
}

void block_trace_start(std::size_t capacity) {
  if (!block_trace_compiled())
    throw gpu_error(gpu_error_code::invalid_argument, "block trace: this build has no trace code (configure with -DWORKER_ORCD_BLOCK_TRACE=ON)");
  if (g_buffers.buf) block_trace_stop();
  WORKER_CUDA_CHECK(cudaMalloc(&g_buffers.buf, capacity * sizeof(block_trace_record)));
  WORKER_CUDA_CHECK(cudaMalloc(&g_buffers.count, sizeof(unsigned int)));
  WORKER_CUDA_CHECK(cudaMemset(g_buffers.count, 0, sizeof(unsigned int)));
  g_buffers.capacity = capacity;
  point_all({g_buffers.buf, g_buffers.count, static_cast<unsigned int>(capacity)});
}

std::vector<block_trace_record> block_trace_stop() {
  std::vector<block_trace_record> out;
  if (!g_buffers.buf) return out;
  WORKER_CUDA_CHECK(cudaDeviceSynchronize());
  point_all({nullptr, nullptr, 0});
  unsigned int n = 0;
  WORKER_CUDA_CHECK(cudaMemcpy(&n, g_buffers.count, sizeof n, cudaMemcpyDeviceToHost));
  out.resize(std::min<std::size_t>(n, g_buffers.capacity));
  if (!out.empty())
    WORKER_CUDA_CHECK(cudaMemcpy(out.data(), g_buffers.buf, out.size() * sizeof(block_trace_record), cudaMemcpyDeviceToHost));
  cudaFree(g_buffers.buf);
  cudaFree(g_buffers.count);
  g_buffers = {};
  return out;
}

}  // namespace worker::gpu
