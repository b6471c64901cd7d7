// Typed errors of the CUDA runtime and the checks that raise them.
//
// Three tiers (house-style §5): resource pressure the caller recovers from (insufficient_vram before a
// load, vram_oom at run time: the arena rolls back and the engine stays usable); a missing or unusable
// device (no_device); and sticky CUDA errors / broken invariants (device_error), which carry file:line.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace worker::gpu {

enum class gpu_error_code {
  no_device,          // no CUDA device, driver too old, or the device index does not exist
  insufficient_vram,  // pre-flight: the plan needs more than cudaMemGetInfo reports free
  vram_oom,           // a device allocation failed at run time (real or injected); recoverable
  invalid_argument,   // a kernel entry got types/shapes it does not support
  device_error,       // any other CUDA error (possibly sticky); the context may be unusable
};

std::string_view to_string(gpu_error_code code);

class gpu_error : public std::runtime_error {
 public:
  gpu_error(gpu_error_code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  gpu_error_code code() const { return code_; }

 private:
  gpu_error_code code_;
};

// Pre-flight failure: how much the plan needs and how much the device has free (bytes).
class insufficient_vram_error : public gpu_error {
 public:
  insufficient_vram_error(std::uint64_t needed, std::uint64_t free, const std::string& message)
      : gpu_error(gpu_error_code::insufficient_vram, message), needed_(needed), free_(free) {}
  std::uint64_t needed_bytes() const { return needed_; }
  std::uint64_t free_bytes() const { return free_; }

 private:
  std::uint64_t needed_;
  std::uint64_t free_;
};

// Throws gpu_error(device_error) naming the call, the CUDA error string and file:line when `status`
// (a cudaError_t passed as int so this header needs no CUDA include) is not cudaSuccess.
void check_cuda_status(int status, const char* what, const char* file, int line);
// The same for the last launch error (cudaGetLastError).
void check_last_launch(const char* what, const char* file, int line);

}  // namespace worker::gpu

#define WORKER_CUDA_CHECK(call) ::worker::gpu::check_cuda_status(static_cast<int>(call), #call, __FILE__, __LINE__)
#define WORKER_CUDA_CHECK_LAUNCH(name) ::worker::gpu::check_last_launch(name, __FILE__, __LINE__)
