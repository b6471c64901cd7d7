// Block codecs of the 32-element formats: Q8_0, Q4_0, Q5_0 (one fp16 scale, symmetric integer levels)
// and MXFP4 (E8M0 power-of-two scale, E2M1 values). Layouts: ../shared/docs/model-facts.md §5.

#include "model/fp_contract_off.hpp"  // first: bit-identical codecs everywhere

#include <bit>
#include <cmath>
#include <cstdint>

#include "model/quant.hpp"
#include "model/quant_impl.hpp"

namespace worker::model::quant_detail {
namespace {

constexpr int k_block = 32;

// Largest |x| of a block. NaNs are skipped (the comparison is false).
float abs_max(const float* x) {
  float am = 0.0f;
  for (int i = 0; i < k_block; ++i) {
    const float a = std::fabs(x[i]);
    am = a > am ? a : am;
  }
  return am;
}

// The block element of largest magnitude, with its sign (the first one on ties).
float signed_extreme(const float* x) {
  float am = 0.0f;
  float m = 0.0f;
  for (int i = 0; i < k_block; ++i) {
    const float a = std::fabs(x[i]);
    if (a > am) {
      am = a;
      m = x[i];
    }
  }
  return m;
}

// Q4_0 / Q5_0 share this: the signed extreme maps to the most negative level −2^(bits−1) exactly,
// which uses the one extra negative level of the asymmetric range [−2^(bits−1), 2^(bits−1) − 1]
// for whichever sign has the larger magnitude. Levels are returned offset to [0, 2^bits).
// Writes the fp16 scale at blk[0..1].
void quantize_symmetric_levels(const float* x, int half_range, std::uint8_t* blk, int* levels) {
  const float m = signed_extreme(x);
  const std::uint16_t dh = fp16_scale(m / static_cast<float>(-half_range));
  store_u16le(blk, dh);
  const float d = fp16_to_fp32(dh);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const float lo = static_cast<float>(-half_range);
  const float hi = static_cast<float>(half_range - 1);
  for (int i = 0; i < k_block; ++i) levels[i] = quantize_level(x[i] * id, lo, hi) + half_range;
}

// kvalues_mxfp4: E2M1 values ×2 indexed by the 4-bit code (bit 3 = sign), paired with d = 2^(e−128).
constexpr std::int8_t k_mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// GGML_E8M0_TO_FP32_HALF: 2^(e−128) as an fp32 bit pattern; e = 0 and 1 are subnormals.
float e8m0_half_scale(std::uint8_t e) {
  const std::uint32_t bits = e < 2 ? (0x00200000u << e) : (static_cast<std::uint32_t>(e - 1) << 23);
  return std::bit_cast<float>(bits);
}

// Magnitude code 0..7 for a ≥ 0 in units of d (the doubled table {0,1,2,3,4,6,8,12}): the nearest
// value, ties to the even code. Each comparison is one midpoint; `>=` where the upper code is even.
int mxfp4_magnitude_code(float a) {
  return (a > 0.5f) + (a >= 1.5f) + (a > 2.5f) + (a >= 3.5f) + (a > 5.0f) + (a >= 7.0f) + (a > 10.0f);
}

}  // namespace

// --- Q8_0: d fp16 @0, qs[32] int8 @2; y = d·q ---------------------------------------------------

void dequantize_block_q8_0(const std::uint8_t* blk, float* y) {
  const float d = fp16_to_fp32(load_u16le(blk));
  for (int i = 0; i < k_block; ++i) y[i] = d * static_cast<float>(static_cast<std::int8_t>(blk[2 + i]));
}

void quantize_block_q8_0(const float* x, std::uint8_t* blk) {
  // Symmetric: the largest magnitude maps to ±127 (−128 is left unused so both signs have equal range).
  const std::uint16_t dh = fp16_scale(abs_max(x) / 127.0f);
  store_u16le(blk, dh);
  const float d = fp16_to_fp32(dh);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int i = 0; i < k_block; ++i) {
    blk[2 + i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(quantize_level(x[i] * id, -127.0f, 127.0f)));
  }
}

// --- Q4_0: d fp16 @0, qs[16] @2; element j<16 in the low nibble of qs[j], j+16 in the high nibble --

void dequantize_block_q4_0(const std::uint8_t* blk, float* y) {
  const float d = fp16_to_fp32(load_u16le(blk));
  const std::uint8_t* qs = blk + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>((qs[j] & 0xF) - 8) * d;
    y[j + 16] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void quantize_block_q4_0(const float* x, std::uint8_t* blk) {
  int q[k_block];
  quantize_symmetric_levels(x, 8, blk, q);
  for (int j = 0; j < 16; ++j) blk[2 + j] = static_cast<std::uint8_t>(q[j] | (q[j + 16] << 4));
}

// --- Q5_0: d fp16 @0, qh uint32 LE @2 (bit i = 5th bit of element i), qs[16] @6 as in Q4_0 ------

void dequantize_block_q5_0(const std::uint8_t* blk, float* y) {
  const float d = fp16_to_fp32(load_u16le(blk));
  const std::uint32_t qh = static_cast<std::uint32_t>(blk[2]) | (static_cast<std::uint32_t>(blk[3]) << 8) |
                           (static_cast<std::uint32_t>(blk[4]) << 16) | (static_cast<std::uint32_t>(blk[5]) << 24);
  const std::uint8_t* qs = blk + 6;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    const int hi = (qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
    y[j] = static_cast<float>(lo - 16) * d;
    y[j + 16] = static_cast<float>(hi - 16) * d;
  }
}

void quantize_block_q5_0(const float* x, std::uint8_t* blk) {
  int q[k_block];
  quantize_symmetric_levels(x, 16, blk, q);
  std::uint32_t qh = 0;
  for (int i = 0; i < k_block; ++i) qh |= static_cast<std::uint32_t>((q[i] >> 4) & 1) << i;
  for (int b = 0; b < 4; ++b) blk[2 + b] = static_cast<std::uint8_t>(qh >> (8 * b));
  for (int j = 0; j < 16; ++j) blk[6 + j] = static_cast<std::uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
}

// --- MXFP4: e (E8M0) @0, qs[16] @1; nibble order as Q4_0; y = kvalues[code]·2^(e−128) ---------------

void dequantize_block_mxfp4(const std::uint8_t* blk, float* y) {
  const float d = e8m0_half_scale(blk[0]);
  const std::uint8_t* qs = blk + 1;
  for (int j = 0; j < 16; ++j) {
    y[j] = static_cast<float>(k_mxfp4_values[qs[j] & 0xF]) * d;
    y[j + 16] = static_cast<float>(k_mxfp4_values[qs[j] >> 4]) * d;
  }
}

void quantize_block_mxfp4(const float* x, std::uint8_t* blk) {
  // The shared exponent is the smallest e with amax ≤ 6·2^(e−127) (6 = largest E2M1 magnitude), so
  // the block maximum is never clipped. frexp and ldexp are exact, so e is the same everywhere.
  const float amax = abs_max(x);
  int e = 0;
  if (amax > 0.0f) {
    int k = 0;
    static_cast<void>(std::frexp(amax, &k));  // amax ∈ [2^(k−1), 2^k)
    e = k + 124;                              // 6·2^(k−3) = 0.75·2^k; else k+125 (1.5·2^k) fits
    if (static_cast<double>(amax) > std::ldexp(6.0, e - 127)) ++e;
    e = e < 0 ? 0 : (e > 254 ? 254 : e);
  }
  blk[0] = static_cast<std::uint8_t>(e);
  // Elements in units of d = 2^(e−128), scaled by 2^(128−e) in two power-of-two steps that each stay
  // a normal float (2^-63 … 2^64). That is exact whenever the result can reach a rounding threshold
  // (≥ 0.5); a product that underflows on the way ends far below 0.5, i.e. at code 0, anyway.
  const int shift = 128 - e;
  const float scale_a = std::ldexp(1.0f, shift / 2);
  const float scale_b = std::ldexp(1.0f, shift - shift / 2);
  int code[k_block];
  for (int i = 0; i < k_block; ++i) {
    const float v = (x[i] * scale_a) * scale_b;
    const int mag = mxfp4_magnitude_code(std::fabs(v));
    code[i] = mag | ((v < 0.0f && mag != 0) ? 8 : 0);
  }
  for (int j = 0; j < 16; ++j) blk[1 + j] = static_cast<std::uint8_t>(code[j] | (code[j + 16] << 4));
}

}  // namespace worker::model::quant_detail
