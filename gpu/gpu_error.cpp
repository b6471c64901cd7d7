// Error strings and the CUDA status checks of gpu_error.hpp.
#include "gpu/gpu_error.hpp"

#include <cuda_runtime_api.h>

namespace worker::gpu {

std::string_view to_string(gpu_error_code code) {
  switch (code) {
    case gpu_error_code::no_device: return "NO_DEVICE";
    case gpu_error_code::insufficient_vram: return "INSUFFICIENT_VRAM";
    case gpu_error_code::vram_oom: return "VRAM_OOM";
    case gpu_error_code::invalid_argument: return "INVALID_ARGUMENT";
    case gpu_error_code::device_error: return "CUDA_ERROR";
  }
  return "UNKNOWN";
}

void check_cuda_status(int status, const char* what, const char* file, int line) {
  if (status == cudaSuccess) return;
  const auto err = static_cast<cudaError_t>(status);
  const gpu_error_code code =
      err == cudaErrorMemoryAllocation ? gpu_error_code::vram_oom : gpu_error_code::device_error;
  throw gpu_error(code, std::string(what) + " failed: " + cudaGetErrorName(err) + " (" +
                            cudaGetErrorString(err) + ") at " + file + ":" + std::to_string(line));
}

void check_last_launch(const char* what, const char* file, int line) {
  check_cuda_status(static_cast<int>(cudaGetLastError()), what, file, line);
}

}  // namespace worker::gpu
