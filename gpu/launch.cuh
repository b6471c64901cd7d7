// One way to launch a kernel that may run as a programmatic dependent launch (PDL, Hopper): with `pdl`
// the kernel may start while the previous kernel on the stream is still running, and must itself wait
// (griddepcontrol.wait) before reading that kernel's outputs. Shared by every kernel family that uses
// PDL (matvec, quantize, RMSNorm, attention) so the attribute is set in one place.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>

#include "gpu/gpu_error.hpp"

namespace worker::gpu {

// Shared-memory carveout: how much of an SM's unified L1 / shared memory a kernel prefers as shared
// memory (cudaFuncAttributePreferredSharedMemoryCarveout), the rest staying L1 — where the decode
// matvecs re-read their activations. Unset, the driver chooses per kernel; a kernel family may state a
// measured default (default_smem_carveout). Measuring switch WORKER_ORCD_SMEM_CARVEOUT: P (0..100) for
// every kernel launched through launch_maybe_pdl_shared, P:pat+pat for those whose mangled name holds
// one of the patterns, driver for no preference anywhere; set, it replaces the defaults. Numbers:
// docs/performance.md, session 21.
int smem_carveout_preference();
// Sets the preference for `kernel` the first time it is seen (thread-safe).
void prefer_smem_carveout_once(const void* kernel, int percent);
// A kernel family's measured default preference (before its first launch); the measuring switch, when
// set (WORKER_ORCD_SMEM_CARVEOUT=driver: no preference at all), replaces it.
void default_smem_carveout(const void* kernel, int percent);

// With `shared_bytes` of dynamic shared memory per block.
template <typename... KernelParams, typename... Args>
void launch_maybe_pdl_shared(void (*kernel)(KernelParams...), dim3 grid, dim3 block, std::size_t shared_bytes, bool pdl,
                             cudaStream_t stream, Args&&... args) {
  if (const int carveout = smem_carveout_preference(); carveout >= 0)
    prefer_smem_carveout_once(reinterpret_cast<const void*>(kernel), carveout);
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = shared_bytes;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl ? 1 : 0;
  WORKER_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

template <typename... KernelParams, typename... Args>
void launch_maybe_pdl(void (*kernel)(KernelParams...), dim3 grid, dim3 block, bool pdl, cudaStream_t stream,
                      Args&&... args) {
  launch_maybe_pdl_shared(kernel, grid, block, 0, pdl, stream, std::forward<Args>(args)...);
}

// Streaming multiprocessors of the current device (at least 1): what one-wave grids are sized by.
inline unsigned current_device_sms() {
  int dev = 0, n = 0;
  WORKER_CUDA_CHECK(cudaGetDevice(&dev));
  WORKER_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
  return n > 1 ? static_cast<unsigned>(n) : 1u;
}

}  // namespace worker::gpu
