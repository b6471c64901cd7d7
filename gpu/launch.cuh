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

// With `shared_bytes` of dynamic shared memory per block.
template <typename... KernelParams, typename... Args>
void launch_maybe_pdl_shared(void (*kernel)(KernelParams...), dim3 grid, dim3 block, std::size_t shared_bytes, bool pdl,
                             cudaStream_t stream, Args&&... args) {
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
