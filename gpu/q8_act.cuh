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

__device__ __forceinline__ void quantize_block(float x, int lane, std::int8_t* hi, std::int8_t* lo, float4* ds) {
  float amax = fabsf(x);
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float dh = amax / 127.0f;
  const int qh = dh == 0.0f ? 0 : __float2int_rn(__fdiv_rn(x, dh));
  const float r = __fsub_rn(x, __fmul_rn(dh, static_cast<float>(qh)));
  float rmax = fabsf(r);
  for (int o = 16; o > 0; o >>= 1) rmax = fmaxf(rmax, __shfl_xor_sync(0xffffffffu, rmax, o));
  const float dl = rmax / 127.0f;
  const int ql = dl == 0.0f ? 0 : __float2int_rn(__fdiv_rn(r, dl));
  int sh = qh, sl = ql;
  for (int o = 16; o > 0; o >>= 1) {
    sh += __shfl_xor_sync(0xffffffffu, sh, o);
    sl += __shfl_xor_sync(0xffffffffu, sl, o);
  }
  hi[lane] = static_cast<std::int8_t>(qh);
  lo[lane] = static_cast<std::int8_t>(ql);
  if (lane == 0) *ds = make_float4(dh, dh * static_cast<float>(sh), dl, dl * static_cast<float>(sl));
}

}  // namespace worker::gpu::q8
