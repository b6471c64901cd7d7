// Kernels and timing of launch_latency.cuh.
#include "gpu/launch_latency.cuh"

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include "gpu/event_timing.hpp"
#include "gpu/gpu_error.hpp"
#include "gpu/launch.cuh"

namespace worker::gpu {

namespace {

constexpr int k_threads = 128;
constexpr int k_chain = 256;       // dependent kernels per graph
constexpr int k_replays = 20;
constexpr int k_barriers = 4096;   // barriers per cooperative launch
constexpr int k_rounds = 3;        // timed repetitions (after a warm-up): the median counts

// A stand-in for a small decode kernel: every block touches global memory once. As a programmatic
// dependent it waits for its predecessor first, then lets its successor launch.
__global__ void __launch_bounds__(k_threads) chain_kernel(unsigned* counters) {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
  if (threadIdx.x == 0) atomicAdd(counters + blockIdx.x, 1u);
}

__global__ void __launch_bounds__(k_threads) barrier_kernel(unsigned* counters, int n) {
  cooperative_groups::grid_group grid = cooperative_groups::this_grid();
  for (int i = 0; i < n; ++i) {
    if (threadIdx.x == 0) atomicAdd(counters + blockIdx.x, 1u);
    grid.sync();
  }
}

// Microseconds per node of a graph of k_chain dependent chain_kernel launches (median of k_rounds timings).
double graph_node_us(cudaStream_t st, unsigned* counters, int blocks, bool pdl) {
  cudaGraph_t g = nullptr;
  cudaGraphExec_t exec = nullptr;
  WORKER_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < k_chain; ++i) launch_maybe_pdl(chain_kernel, dim3(blocks), dim3(k_threads), pdl, st, counters);
  WORKER_CUDA_CHECK(cudaStreamEndCapture(st, &g));
  const cudaError_t err = cudaGraphInstantiate(&exec, g, 0);
  cudaGraphDestroy(g);
  WORKER_CUDA_CHECK(err);
  double seconds = 0.0;
  try {
    seconds = median_stream_seconds(k_rounds, st, [&] {
      for (int r = 0; r < k_replays; ++r) WORKER_CUDA_CHECK(cudaGraphLaunch(exec, st));
    });
  } catch (...) {
    cudaGraphExecDestroy(exec);
    throw;
  }
  cudaGraphExecDestroy(exec);
  return 1e6 * seconds / (k_replays * k_chain);
}

}  // namespace

launch_latency measure_launch_latency() {
  int dev = 0, coop = 0;
  WORKER_CUDA_CHECK(cudaGetDevice(&dev));
  WORKER_CUDA_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
  const int sms = static_cast<int>(current_device_sms());
  cudaStream_t st = nullptr;
  WORKER_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  unsigned* counters = nullptr;
  launch_latency r;
  try {
    WORKER_CUDA_CHECK(cudaMalloc(&counters, sizeof(unsigned) * static_cast<unsigned>(sms)));
    r.graph_node_us = graph_node_us(st, counters, sms, false);
    r.graph_node_pdl_us = graph_node_us(st, counters, sms, true);
    if (coop) {
      int n = k_barriers;
      void* args[] = {&counters, &n};
      const double seconds = median_stream_seconds(k_rounds, st, [&] {
        WORKER_CUDA_CHECK(cudaLaunchCooperativeKernel(reinterpret_cast<void*>(barrier_kernel), dim3(sms), dim3(k_threads),
                                                      args, 0, st));
      });
      r.grid_barrier_us = 1e6 * seconds / k_barriers;
    }
  } catch (...) {
    if (counters) cudaFree(counters);
    cudaStreamDestroy(st);
    throw;
  }
  cudaFree(counters);
  cudaStreamDestroy(st);
  return r;
}

}  // namespace worker::gpu
