// Internal to model/quant*.cpp: one-block codecs of every supported ggml block format, plus the small
// arithmetic helpers they share. quant.cpp dispatches rows to these; nothing outside model/ includes it.
//
// Determinism: the quantizers must give the same bytes on every machine (the synthetic-model generator
// relies on it), so they round with round_half_even() below (pure IEEE add/sub, no libm, no rounding
// mode dependence beyond the default) and accumulate in an explicitly fixed order.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace worker::model::quant_detail {

// Nearest integer, ties to even, for |v| < 2^22: adding 1.5·2^23 pushes the fraction bits out of the
// fp32 mantissa, and the FPU's default round-to-nearest-even does the rounding. Exact and vectorizable.
inline float round_half_even(float v) {
  constexpr float k_magic = 12582912.0f;  // 1.5 · 2^23
  return (v + k_magic) - k_magic;
}

// A key whose signed-integer order is the order of the floats (−0 just below +0, NaNs beyond ±inf):
// positive floats already order by their bits, negative ones need their magnitude bits flipped.
// The map is its own inverse.
inline std::int32_t float_order_key(float v) {
  const auto b = std::bit_cast<std::int32_t>(v);
  return b ^ ((b >> 31) & 0x7FFFFFFF);
}

// Clamps v to [lo, hi] by comparing order keys. Integer compare-selects, unlike float ones under
// GCC's default -ftrapping-math, vectorize; the result is the same as the float clamp for every
// non-NaN v, and a NaN lands on lo or hi by its sign bit (so a later int cast stays defined).
inline float clamp_to(float v, float lo, float hi) {
  std::int32_t k = float_order_key(v);
  const std::int32_t klo = float_order_key(lo);
  const std::int32_t khi = float_order_key(hi);
  k = k < klo ? klo : k;
  k = k > khi ? khi : k;
  return std::bit_cast<float>(float_order_key(std::bit_cast<float>(k)));
}

// Clamp then round: the integer in [lo, hi] nearest to v (lo, hi integral).
inline int quantize_level(float v, float lo, float hi) {
  return static_cast<int>(round_half_even(clamp_to(v, lo, hi)));
}

inline std::uint16_t load_u16le(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline void store_u16le(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v & 0xFF);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}

// fp16 of a block scale, saturating at ±65504 (the largest finite half) instead of becoming inf, so
// that absurdly large weights give clamped but finite blocks.
std::uint16_t fp16_scale(float d);

// Block codecs. `blk` points at one block of traits(type).block_bytes bytes; `x` / `y` at
// traits(type).block_elems floats (32 for q8_0/q4_0/q5_0/mxfp4, 256 for the K-quants).
void dequantize_block_q8_0(const std::uint8_t* blk, float* y);
void quantize_block_q8_0(const float* x, std::uint8_t* blk);
void dequantize_block_q4_0(const std::uint8_t* blk, float* y);
void quantize_block_q4_0(const float* x, std::uint8_t* blk);
void dequantize_block_q5_0(const std::uint8_t* blk, float* y);
void quantize_block_q5_0(const float* x, std::uint8_t* blk);
void dequantize_block_mxfp4(const std::uint8_t* blk, float* y);
void quantize_block_mxfp4(const float* x, std::uint8_t* blk);
void dequantize_block_q4_k(const std::uint8_t* blk, float* y);
void quantize_block_q4_k(const float* x, std::uint8_t* blk);
void dequantize_block_q5_k(const std::uint8_t* blk, float* y);
void quantize_block_q5_k(const float* x, std::uint8_t* blk);
void dequantize_block_q6_k(const std::uint8_t* blk, float* y);
void quantize_block_q6_k(const float* x, std::uint8_t* blk);

}  // namespace worker::model::quant_detail
