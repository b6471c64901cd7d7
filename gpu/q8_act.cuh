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

__device__ __forceinline__ void quantize_block(float x, int lane, std::int8_t* hi, std::int8_t* lo, float4* ds) {
  const float amax = warp_max_nonneg(fabsf(x));
  const float dh = amax / 127.0f;
  const int qh = dh == 0.0f ? 0 : __float2int_rn(__fdiv_rn(x, dh));
  const float r = __fsub_rn(x, __fmul_rn(dh, static_cast<float>(qh)));
  const float rmax = warp_max_nonneg(fabsf(r));
  const float dl = rmax / 127.0f;
  const int ql = dl == 0.0f ? 0 : __float2int_rn(__fdiv_rn(r, dl));
  const int sh = warp_sum_int(qh), sl = warp_sum_int(ql);
  hi[lane] = static_cast<std::int8_t>(qh);
  lo[lane] = static_cast<std::int8_t>(ql);
  if (lane == 0) *ds = make_float4(dh, dh * static_cast<float>(sh), dl, dl * static_cast<float>(sl));
}

}  // namespace worker::gpu::q8
