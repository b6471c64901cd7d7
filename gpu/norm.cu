// Kernel, launcher and typed entry of norm.cuh.
#include "gpu/norm.cuh"

#include <string>

#include "gpu/gpu_error.hpp"
#include "gpu/launch.cuh"
#include "gpu/q8_act.cuh"

namespace worker::gpu {

namespace {

constexpr int k_threads = 1024;       // one block per row: many threads keep the single-row (decode) case short
constexpr int k_max_per_thread = 8;   // dim ≤ 8192

__global__ void __launch_bounds__(k_threads) rmsnorm_kernel(const rmsnorm_args a) {
  // Launched as a programmatic dependent (a.pdl): wait for the producer of h. Then a programmatic
  // dependent of this grid (the next matvec) may start: it only loads weights until this grid has
  // completed (its own griddepcontrol.wait).
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
  const std::uint32_t row = blockIdx.x;
  float* h = a.h + static_cast<std::size_t>(row) * a.ldh;
  const float* delta = a.delta ? a.delta + static_cast<std::size_t>(row) * a.ld_delta : nullptr;
  float v[k_max_per_thread];
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < k_max_per_thread; ++k) {
    const std::uint32_t i = k * k_threads + threadIdx.x;
    v[k] = 0.0f;
    if (i < a.dim) {
      float x = h[i];
      if (delta) {
        x = __fadd_rn(x, delta[i]);
        h[i] = x;
      }
      v[k] = x;
      ss += static_cast<double>(x) * static_cast<double>(x);
    }
  }
  // Fixed-order reduction: warp butterfly, then warps in index order.
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  __shared__ double part[k_threads / 32];
  __shared__ float scale_s;
  if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int w = 0; w < k_threads / 32; ++w) t += part[w];
    const float mean = static_cast<float>(t / static_cast<double>(a.dim));
    scale_s = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, a.eps)));
  }
  __syncthreads();
  const float scale = scale_s;
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int k = 0; k < k_max_per_thread; ++k) {
    const std::uint32_t base = k * k_threads;
    if (base >= a.dim) break;
    const std::uint32_t i = base + threadIdx.x;
    const bool in = i < a.dim;
    const float y = in ? __fmul_rn(__fmul_rn(v[k], scale), a.weight[i]) : 0.0f;
    if (in && a.out_f32) a.out_f32[static_cast<std::size_t>(row) * a.ld_f32 + i] = y;
    if (in && a.out_f16) a.out_f16[static_cast<std::size_t>(row) * a.ld_f16 + i] = __float2half_rn(y);
    if (a.out_q8) {
      // A warp holds 32 consecutive elements: one q8 block (dim is a multiple of 32, so a warp is either
      // entirely inside or entirely outside the row).
      if (base + (threadIdx.x & ~31u) < a.dim) {
        const std::size_t off = static_cast<std::size_t>(row) * a.ld_q8 + (i & ~31u);
        q8::quantize_block(y, lane, a.out_q8 + off, a.out_q8_lo + off, a.out_ds + static_cast<std::size_t>(row) * a.ld_ds + i / 32);
      }
    }
  }
}

}  // namespace

void rmsnorm_fused(const rmsnorm_args& a, cudaStream_t stream) {
  auto require = [](bool ok, const char* what) {
    if (!ok) throw gpu_error(gpu_error_code::invalid_argument, std::string("rmsnorm_fused: ") + what);
  };
  require(a.h && a.weight && a.dim > 0 && a.dim <= k_threads * k_max_per_thread, "bad dims");
  require(a.ldh >= a.dim && (!a.delta || a.ld_delta >= a.dim), "bad strides");
  require(!a.out_q8 || (a.dim % 32 == 0 && a.out_q8_lo && a.out_ds && a.ld_q8 >= a.dim && a.ld_ds >= a.dim / 32),
          "bad q8 output");
  if (a.n == 0) return;
  launch_maybe_pdl(rmsnorm_kernel, dim3(a.n), dim3(k_threads), a.pdl, stream, a);
}

}  // namespace worker::gpu
