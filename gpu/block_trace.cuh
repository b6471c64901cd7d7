// Device side of block_trace.hpp: a tracer a kernel's thread 0 drives (start before the PDL wait, waited
// after it, end when done). Without WORKER_ORCD_BLOCK_TRACE every call is empty.
//
// Each translation unit has its own copy of the recording state (device code is not relocatable here),
// registered at static initialisation so that block_trace_start can point every copy at the buffer.
#pragma once

#include <cstdint>

#include "gpu/block_trace.hpp"

namespace worker::gpu::bt_detail {

struct state {
  block_trace_record* buf;
  unsigned int* count;
  unsigned int capacity;
};
using setter = void (*)(const state&);
bool register_setter(setter s);

}  // namespace worker::gpu::bt_detail

#if defined(WORKER_ORCD_BLOCK_TRACE)
namespace {
// In constant memory: claim() reads it through the constant cache, so that the slot's atomic is issued
// without waiting for a global load, and its latency overlaps the wait instead of adding to it.
__constant__ worker::gpu::bt_detail::state g_block_trace_state;
void set_block_trace_state(const worker::gpu::bt_detail::state& s) {
  cudaMemcpyToSymbol(g_block_trace_state, &s, sizeof s);
}
[[maybe_unused]] const bool g_block_trace_registered = worker::gpu::bt_detail::register_setter(&set_block_trace_state);
}  // namespace
#endif

namespace worker::gpu {

struct block_tracer {
#if defined(WORKER_ORCD_BLOCK_TRACE)
  unsigned long long t0 = 0, tw = 0;
  unsigned int slot = 0;
  bool on = false;
  static __device__ __forceinline__ unsigned long long now() {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
  }
  // At the kernel's first instruction: the start time.
  __device__ __forceinline__ void begin() {
    if (threadIdx.x == 0) t0 = now();
  }
  // Just before the wait: claim a slot (the atomic's result is needed only at the end).
  __device__ __forceinline__ void claim() {
    if (threadIdx.x != 0) return;
    on = g_block_trace_state.buf != nullptr;
    if (on) slot = atomicAdd(g_block_trace_state.count, 1u);
  }
  __device__ __forceinline__ void waited() {
    if (threadIdx.x == 0) tw = now();
  }
  __device__ __forceinline__ void end(traced_kernel k) {
    if (threadIdx.x != 0 || !on || slot >= g_block_trace_state.capacity) return;
    const unsigned long long te = now();
    unsigned long long grid;
    asm volatile("mov.u64 %0, %%gridid;" : "=l"(grid));
    std::uint32_t smid;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
    block_trace_record r;
    r.start_ns = t0;
    r.grid = grid;
    r.wait_ns = tw ? static_cast<std::uint32_t>(tw - t0) : 0u;
    r.end_ns = static_cast<std::uint32_t>(te - t0);
    r.block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    r.kernel = static_cast<std::uint16_t>(k);
    r.smid = static_cast<std::uint16_t>(smid);
    g_block_trace_state.buf[slot] = r;
  }
#else
  __device__ __forceinline__ void begin() {}
  __device__ __forceinline__ void claim() {}
  __device__ __forceinline__ void waited() {}
  __device__ __forceinline__ void end(traced_kernel) {}
#endif
};

}  // namespace worker::gpu
