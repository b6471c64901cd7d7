// One CUDA device: probing (is there a usable GPU, and if not, why), the properties kernels size
// themselves from, and the per-device context an engine owns (compute stream, copy stream, cuBLAS).
#pragma once

#include <cstdint>
#include <string>

#include <cuda_runtime_api.h>

namespace worker::gpu {

// Result of asking the driver for devices. `usable` is false with a human-readable `reason` when
// there is no device, no driver, or a driver older than the runtime.
struct device_probe {
  bool usable = false;
  int device_count = 0;
  std::string reason;
};

device_probe probe_devices();

struct device_info {
  int index = 0;
  std::string name;                     // "NVIDIA H100 80GB HBM3"
  int sm_count = 0;                     // multiprocessors
  int cc_major = 0, cc_minor = 0;       // compute capability
  std::uint64_t total_bytes = 0;        // global memory
  std::uint64_t l2_bytes = 0;
  std::size_t shared_per_block_optin = 0;  // max dynamic shared memory a block may opt into
  double peak_bandwidth_gbs = 0.0;      // from the memory clock and bus width (datasheet-like; the bench measures)
};

device_info query_device(int index);

// Free and total device memory of the current device (cudaMemGetInfo).
struct memory_info {
  std::uint64_t free_bytes = 0;
  std::uint64_t total_bytes = 0;
};
memory_info device_memory();

// Owns the streams and library handles of one device. Not copyable; destroy before cudaDeviceReset.
class device_context {
 public:
  explicit device_context(int index);  // throws gpu_error(no_device) when the index is not usable
  ~device_context();
  device_context(const device_context&) = delete;
  device_context& operator=(const device_context&) = delete;

  const device_info& info() const { return info_; }
  int index() const { return info_.index; }
  cudaStream_t compute_stream() const { return compute_; }
  cudaStream_t copy_stream() const { return copy_; }
  // A second compute stream for kernels of a pass that are independent of the ones beside them
  // (captured as a graph branch): fork_side(main) makes it wait for main's work so far, join_side(main)
  // makes main wait for the side stream's work so far.
  cudaStream_t side_stream() const { return side_; }
  void fork_side(cudaStream_t main) const;
  void join_side(cudaStream_t main) const;
  // cuBLAS handle bound to the compute stream (void* to keep cublas_v2.h out of this header).
  void* cublas() const { return cublas_; }
  // Workspace for cuBLAS (fixed so that graph capture never allocates).
  void* cublas_workspace() const { return cublas_workspace_; }
  std::size_t cublas_workspace_bytes() const { return cublas_workspace_bytes_; }

  void synchronize() const;  // waits for both streams; throws on a sticky error

 private:
  device_info info_;
  cudaStream_t compute_ = nullptr;
  cudaStream_t copy_ = nullptr;
  cudaStream_t side_ = nullptr;
  cudaEvent_t fork_ = nullptr, join_ = nullptr;  // re-recorded at every fork / join
  void* cublas_ = nullptr;
  void* cublas_workspace_ = nullptr;
  std::size_t cublas_workspace_bytes_ = 0;
};

// Parses "cuda:N" / "cuda" (N = 0); returns -1 for anything else.
int parse_cuda_device(const std::string& spec);

}  // namespace worker::gpu
