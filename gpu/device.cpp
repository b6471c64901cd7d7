// Device probing and the per-device context (streams, cuBLAS handle and its fixed workspace).
#include "gpu/device.hpp"

#include <cublas_v2.h>

#include <string>

#include "gpu/gpu_error.hpp"

namespace worker::gpu {

device_probe probe_devices() {
  device_probe p;
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    p.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
    cudaGetLastError();  // clear the non-sticky error
    return p;
  }
  p.device_count = count;
  if (count == 0) {
    p.reason = "no CUDA device";
    return p;
  }
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  if (driver < runtime) {
    p.reason = "CUDA driver " + std::to_string(driver) + " is older than the runtime " + std::to_string(runtime);
    return p;
  }
  p.usable = true;
  return p;
}

device_info query_device(int index) {
  cudaDeviceProp prop{};
  WORKER_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  device_info d;
  d.index = index;
  d.name = prop.name;
  d.sm_count = prop.multiProcessorCount;
  d.cc_major = prop.major;
  d.cc_minor = prop.minor;
  d.total_bytes = prop.totalGlobalMem;
  d.l2_bytes = static_cast<std::uint64_t>(prop.l2CacheSize);
  d.shared_per_block_optin = prop.sharedMemPerBlockOptin;
  int mem_clock_khz = 0, bus_bits = 0;
  cudaDeviceGetAttribute(&mem_clock_khz, cudaDevAttrMemoryClockRate, index);
  cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, index);
  // DDR: two transfers per clock.
  d.peak_bandwidth_gbs = 2.0 * mem_clock_khz * 1e3 * (bus_bits / 8.0) / 1e9;
  return d;
}

memory_info device_memory() {
  std::size_t free_b = 0, total_b = 0;
  WORKER_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return {free_b, total_b};
}

device_context::device_context(int index) {
  const device_probe p = probe_devices();
  if (!p.usable) throw gpu_error(gpu_error_code::no_device, "no usable CUDA device: " + p.reason);
  if (index < 0 || index >= p.device_count) {
    throw gpu_error(gpu_error_code::no_device, "CUDA device " + std::to_string(index) + " does not exist (" +
                                                   std::to_string(p.device_count) + " present)");
  }
  WORKER_CUDA_CHECK(cudaSetDevice(index));
  info_ = query_device(index);
  WORKER_CUDA_CHECK(cudaStreamCreateWithFlags(&compute_, cudaStreamNonBlocking));
  WORKER_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking));
  WORKER_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
  WORKER_CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
  WORKER_CUDA_CHECK(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
  cublasHandle_t h = nullptr;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) throw gpu_error(gpu_error_code::device_error, "cublasCreate failed");
  cublas_ = h;
  cublasSetStream(h, compute_);
  // A fixed workspace: cuBLAS then never allocates during a call (required inside graph capture).
  cublas_workspace_bytes_ = 32u << 20;
  WORKER_CUDA_CHECK(cudaMalloc(&cublas_workspace_, cublas_workspace_bytes_));
  cublasSetWorkspace(h, cublas_workspace_, cublas_workspace_bytes_);
  // Reproducible results: no atomics-based reductions inside cuBLAS.
  cublasSetAtomicsMode(h, CUBLAS_ATOMICS_NOT_ALLOWED);
}

device_context::~device_context() {
  if (cublas_) cublasDestroy(static_cast<cublasHandle_t>(cublas_));
  if (cublas_workspace_) cudaFree(cublas_workspace_);
  if (join_) cudaEventDestroy(join_);
  if (fork_) cudaEventDestroy(fork_);
  if (side_) cudaStreamDestroy(side_);
  if (copy_) cudaStreamDestroy(copy_);
  if (compute_) cudaStreamDestroy(compute_);
}

void device_context::synchronize() const {
  WORKER_CUDA_CHECK(cudaStreamSynchronize(copy_));
  WORKER_CUDA_CHECK(cudaStreamSynchronize(side_));
  WORKER_CUDA_CHECK(cudaStreamSynchronize(compute_));
}

void device_context::fork_side(cudaStream_t main) const {
  WORKER_CUDA_CHECK(cudaEventRecord(fork_, main));
  WORKER_CUDA_CHECK(cudaStreamWaitEvent(side_, fork_, 0));
}

void device_context::join_side(cudaStream_t main) const {
  WORKER_CUDA_CHECK(cudaEventRecord(join_, side_));
  WORKER_CUDA_CHECK(cudaStreamWaitEvent(main, join_, 0));
}

int parse_cuda_device(const std::string& spec) {
  if (spec == "cuda") return 0;
  if (spec.rfind("cuda:", 0) != 0 || spec.size() == 5) return -1;
  int v = 0;
  for (std::size_t i = 5; i < spec.size(); ++i) {
    if (spec[i] < '0' || spec[i] > '9') return -1;
    v = v * 10 + (spec[i] - '0');
    if (v > 1024) return -1;
  }
  return v;
}

}  // namespace worker::gpu
