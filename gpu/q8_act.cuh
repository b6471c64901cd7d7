// Two-level int8 activations for the dp4a matvecs (device side; internal to gpu/).
//
// Each block of 32 activations x is stored as x ≈ d_hi·q_hi + d_lo·q_lo with int8 q_hi, q_lo:
//   d_hi = max|x|/127, q_hi = round(x/d_hi); r = x − d_hi·q_hi; d_lo = max|r|/127, q_lo = round(r/d_lo)
// (round half to even; a zero scale gives zeros). The residual error is ≤ d_lo/2 ≤ max|x|/64516, about
// what fp16 activations give, while the products stay integer dot products (__dp4a). ds holds
// (d_hi, s_hi, d_lo, s_lo) with s = d·Σq, which the formats with an offset or a min term need.
// One warp quantizes one block: lane i holds x[i].
#pragma once

#include <cstdint>

#include "gpu/matvec.cuh"

namespace worker::gpu::q8 {

// Warp maxima and sums as single redux instructions where the card has them (sm_80+): the max of
// non-negative (non-NaN) floats equals the max of their bit patterns as unsigned integers, and integer
// sums do not depend on the order, so the results are the bits of the shuffle butterflies they
// replace, with a shorter latency chain (the quantization sits on the critical path of RMSNorm,
// attention and the post-SwiGLU quantization).
__device__ __forceinline__ float warp_max_nonneg(float v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  return __uint_as_float(__reduce_max_sync(0xffffffffu, __float_as_uint(v)));
#else
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
#endif
}

__device__ __forceinline__ int warp_sum_int(int v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  return __reduce_add_sync(0xffffffffu, v);
#else
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
#endif
}

// One lane's two levels and the block's (d_hi, s_hi, d_lo, s_lo), in every lane.
struct block_q8 {
  int qh, ql;
  float4 ds;
};
__device__ __forceinline__ block_q8 quantize_values(float x) {
  const float amax = warp_max_nonneg(fabsf(x));
  const float dh = amax / 127.0f;
  const int qh = dh == 0.0f ? 0 : __float2int_rn(__fdiv_rn(x, dh));
  const float r = __fsub_rn(x, __fmul_rn(dh, static_cast<float>(qh)));
  const float rmax = warp_max_nonneg(fabsf(r));
  const float dl = rmax / 127.0f;
  const int ql = dl == 0.0f ? 0 : __float2int_rn(__fdiv_rn(r, dl));
  const int sh = warp_sum_int(qh), sl = warp_sum_int(ql);
  return {qh, ql, make_float4(dh, dh * static_cast<float>(sh), dl, dl * static_cast<float>(sl))};
}

// The standard layout: lane i's element at hi[i] / lo[i], the block's ds at *ds.
__device__ __forceinline__ void quantize_block(float x, int lane, std::int8_t* hi, std::int8_t* lo, float4* ds) {
  const block_q8 q = quantize_values(x);
  hi[lane] = static_cast<std::int8_t>(q.qh);
  lo[lane] = static_cast<std::int8_t>(q.ql);
  if (lane == 0) *ds = q.ds;
}

// The superblock-minor layout (matvec.cuh sb_minor_byte): element e0 + lane of a column whose bytes
// start at hi / lo and whose ds start at ds; e0 a multiple of 32, nsb = the column's K / 256.
__device__ __forceinline__ void quantize_block_sb_minor(float x, int lane, std::int8_t* hi, std::int8_t* lo, float4* ds,
                                                        std::uint32_t e0, std::uint32_t nsb) {
  const block_q8 q = quantize_values(x);
  const std::uint32_t at = sb_minor_byte(e0 + static_cast<std::uint32_t>(lane), nsb);
  hi[at] = static_cast<std::int8_t>(q.qh);
  lo[at] = static_cast<std::int8_t>(q.ql);
  if (lane == 0) ds[sb_minor_block(e0 / 32, nsb)] = q.ds;
}

}  // namespace worker::gpu::q8
