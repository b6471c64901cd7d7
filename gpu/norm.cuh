// RMSNorm fused with the residual add and with the conversions its consumers need:
//   h[t] += delta[t] (optional);  y = h[t] / sqrt(mean(h[t]²) + eps) · w
// written as fp32 (attention/reference), fp16 (prefill GEMM input) and/or two-level int8 blocks (decode
// matvec input, the quantization of quantize_q8 / q8_act.cuh). Up to 16 rows without a residual (decode):
// one block per 128 outputs, each block summing the whole row (norm.cu says why); otherwise one block per
// row; both give the same bits. h (and delta) rows must be 16-byte aligned. The sum of squares is
// accumulated in double like the CPU reference (cpu/norm.cpp), and y = (h·scale)·w is rounded the same
// way, so the fp32 output matches the CPU bit for bit up to the double summation order.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <cstdint>

namespace worker::gpu {

struct rmsnorm_args {
  float* h = nullptr;             // [n][ldh] residual stream; updated in place when delta is set
  std::uint32_t ldh = 0;
  const float* delta = nullptr;   // [n][ld_delta] added to h first, or null
  std::uint32_t ld_delta = 0;
  const float* weight = nullptr;  // [dim]
  std::uint32_t dim = 0;          // ≤ 8192, a multiple of 4
  std::uint32_t n = 0;            // rows
  float eps = 1e-6f;
  float* out_f32 = nullptr;       // [n][ld_f32] or null
  std::uint32_t ld_f32 = 0;
  __half* out_f16 = nullptr;      // [n][ld_f16] or null
  std::uint32_t ld_f16 = 0;
  std::int8_t* out_q8 = nullptr;  // q_hi [n][ld_q8] or null (dim a multiple of 32)
  std::int8_t* out_q8_lo = nullptr;  // q_lo [n][ld_q8]
  bool q8_sb_minor = false;  // out_q8 / out_q8_lo / out_ds in the superblock-minor layout (matvec.cuh; n = 1, dim % 256 == 0)
  std::uint32_t ld_q8 = 0;
  float4* out_ds = nullptr;       // [n][ld_ds]
  std::uint32_t ld_ds = 0;
  bool pdl = false;               // launch as a programmatic dependent (decode: hides the launch latency)
  // With pdl: let this grid's programmatic dependent (the next matvec) launch when this grid starts,
  // before this grid's own wait, rather than after it. The dependent still waits for this grid's
  // completion (which implies its producer's) before it reads anything this grid writes; it only gets
  // its blocks resident and its weight loads in flight one kernel boundary earlier.
  bool early_trigger = false;
  // With pdl and without early_trigger: trigger once the block has loaded its row and summed it, not
  // right after the wait, so that the dependent's weight loads do not compete with this grid's own
  // loads (measured slower in decode: tokens attnnormmid / ffnnormmid, adapters/cuda_engine_passes.cpp).
  bool trigger_after_sum = false;
};

void rmsnorm_fused(const rmsnorm_args& a, cudaStream_t stream);

}  // namespace worker::gpu
