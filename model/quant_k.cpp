// Block codecs of the 256-element K-quant super-blocks: Q4_K, Q5_K (8 affine sub-blocks of 32 with
// 6-bit scales and mins) and Q6_K (16 symmetric sub-blocks of 16 with signed 8-bit scales).
// Layouts: ../shared/docs/model-facts.md §5.
//
// Quantization is two-level. First each sub-block gets its own real-valued fit by a small search:
// a handful of candidate step sizes near the naive one ((max − min)/nmax for the affine Q4_K/Q5_K
// sub-blocks, |extreme|/32 for the symmetric Q6_K ones), each rounded to integer levels and then
// refitted by least squares (the best scale/offset for those levels), keeping the candidate with
// the smallest squared error. Then the sub-block scales are themselves quantized
// against one fp16 super-scale, and the elements are rounded once more against the scales exactly as
// the decoder will reconstruct them.

#include "model/fp_contract_off.hpp"  // first: bit-identical codecs everywhere

#include <cmath>
#include <cstdint>
#include <limits>

#include "model/quant.hpp"
#include "model/quant_impl.hpp"

namespace worker::model::quant_detail {
namespace {

constexpr int k_super = 256;

// x ≈ scale·q − min for integer q in [0, nmax], scale ≥ 0, min ≥ 0 (the K-quant offset is −dmin·m).
struct affine_fit {
  float scale;
  float min;
};

// Fixed-order fp32 sums over a sub-block, written as eight independent lanes so that GCC vectorizes
// them without reordering anything: for 32 elements lane l = ((e[l] + e[l+8]) + e[l+16]) + e[l+24],
// for 16 elements lane l = e[l] + e[l+8]; the lanes are then combined pairwise.
double combine_lanes(const float* lane) {
  return static_cast<double>(((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7])));
}

struct level_sums {
  double q;   // Σq
  double qq;  // Σq²
  double qx;  // Σq·x
};

level_sums level_sums32(const float* x, const float* q) {
  float aq[8], aqq[8], aqx[8];
  for (int l = 0; l < 8; ++l) {
    const float q0 = q[l], q1 = q[l + 8], q2 = q[l + 16], q3 = q[l + 24];
    aq[l] = ((q0 + q1) + q2) + q3;
    aqq[l] = ((q0 * q0 + q1 * q1) + q2 * q2) + q3 * q3;
    aqx[l] = ((q0 * x[l] + q1 * x[l + 8]) + q2 * x[l + 16]) + q3 * x[l + 24];
  }
  return {combine_lanes(aq), combine_lanes(aqq), combine_lanes(aqx)};
}

level_sums level_sums16(const float* x, const float* q) {
  float aq[8], aqq[8], aqx[8];
  for (int l = 0; l < 8; ++l) {
    const float q0 = q[l], q1 = q[l + 8];
    aq[l] = q0 + q1;
    aqq[l] = q0 * q0 + q1 * q1;
    aqx[l] = q0 * x[l] + q1 * x[l + 8];
  }
  return {combine_lanes(aq), combine_lanes(aqq), combine_lanes(aqx)};
}

// Candidate numbers of steps spanning the sub-block's range, around nmax. Fewer steps than nmax give
// a coarser grid that still covers the range; more steps clip the extremes for a finer grid. Seven
// candidates in thirds get within 0.2% of the RMS error of eleven in fifths (measured on Gaussian
// data) at two thirds of the cost.
constexpr float k_affine_deltas[] = {-1.0f, -0.6667f, -0.3333f, 0.0f, 0.3333f, 0.6667f, 1.0f};

// Tracks the best least-squares fit over candidate level assignments of one 32-element sub-block.
// For levels q the best x ≈ s·q + b solves the normal equations
//   Σq²·s + Σq·b = Σqx,   Σq·s + n·b = Σx,   det = n·Σq² − (Σq)²,
// i.e. s = (n·Σqx − Σq·Σx)/det, b = (Σq²·Σx − Σq·Σqx)/det, and leaves the squared error Σx² − gain
// with gain = s·Σqx + b·Σx. The format's offset −dmin·m is ≤ 0, so if b would be > 0 the
// constrained optimum is b = 0, s = Σqx/Σq², gain = (Σqx)²/Σq². Candidates are ranked by gain kept
// as a fraction (compared cross-multiplied, no division); only the winner is solved.
class affine_search {
 public:
  affine_search(double sx, affine_fit fallback) : sx_(sx), fallback_(fallback) {}

  void consider(double sq, double sqq, double sqx) {
    constexpr double n = 32.0;
    const double det = n * sqq - sq * sq;
    if (!(det > 0.0)) return;  // all levels equal: no slope information
    candidate c{n * sqx - sq * sx_, sqq * sx_ - sq * sqx, det, 0.0, det};
    if (c.b_num > 0.0) {
      c.b_num = 0.0;
      c.s_num = sqx;
      c.den = sqq;
    }
    if (!(c.s_num > 0.0)) return;  // the scale must be positive
    c.gain_num = c.s_num * sqx + c.b_num * sx_;
    if (have_ && !(c.gain_num * best_.gain_den > best_.gain_num * c.den)) return;
    c.gain_den = c.den;
    best_ = c;
    have_ = true;
  }

  affine_fit best() const {
    if (!have_) return fallback_;
    return {static_cast<float>(best_.s_num / best_.den), static_cast<float>(-best_.b_num / best_.den)};
  }

 private:
  struct candidate {
    double s_num;     // s = s_num / den
    double b_num;     // b = b_num / den
    double den;       // det, or Σq² when b is pinned to 0
    double gain_num;  // gain = gain_num / gain_den
    double gain_den;
  };
  double sx_;
  affine_fit fallback_;
  candidate best_{};
  bool have_ = false;
};

// Feeds the levels q[0..32) of one sub-block to the search.
void consider_levels(const float* x, const float* q, affine_search& search) {
  const level_sums t = level_sums32(x, q);
  search.consider(t.q, t.qq, t.qx);
}

// Best x ≈ scale·q − min for one 32-element sub-block, q ∈ [0, nmax]. Inputs are finite (quant.cpp
// sanitizes them).
affine_fit fit_affine_subblock(const float* x, int nmax) {
  float xmin = x[0];
  float xmax = x[0];
  for (int i = 1; i < 32; ++i) {
    xmin = x[i] < xmin ? x[i] : xmin;
    xmax = x[i] > xmax ? x[i] : xmax;
  }
  // Σx is the level sum Σq with q = x.
  const level_sums xs = level_sums32(x, x);
  // The offset can only be ≤ 0, so a sub-block of positive values still starts its grid at 0.
  const float lo = xmin < 0.0f ? xmin : 0.0f;
  if (!(xmax > lo)) return {0.0f, -lo};  // constant (≤ 0) sub-block: exact with q = 0
  const float fnmax = static_cast<float>(nmax);
  const float range = xmax - lo;
  affine_search search(xs.q, {range / fnmax, -lo});
  float q[32];
  for (const float delta : k_affine_deltas) {
    const float iscale = (fnmax + delta) / range;
    if (!std::isfinite(iscale)) break;  // subnormal range: keep the fallback
    // x − lo ∈ [0, range], so the scaled value lies in [0, nmax + delta] (+ rounding): only the upper
    // clamp is needed, done on integers because GCC vectorizes that but not a float compare-select.
    for (int i = 0; i < 32; ++i) {
      int qi = static_cast<int>(round_half_even((x[i] - lo) * iscale));
      qi = qi < nmax ? qi : nmax;  // a separate statement: GCC 12 won't vectorize it inside the cast
      q[i] = static_cast<float>(qi);
    }
    consider_levels(x, q, search);
  }
  // One more round: re-level against the winning fit itself and refit.
  const affine_fit f = search.best();
  if (f.scale > 0.0f) {
    const float iscale = 1.0f / f.scale;
    for (int i = 0; i < 32; ++i) q[i] = static_cast<float>(quantize_level((x[i] + f.min) * iscale, 0.0f, fnmax));
    consider_levels(x, q, search);
  }
  return search.best();
}

// Q4_K/Q5_K second level: 6-bit scales against d = max scale / 63 and 6-bit mins against
// dmin = max min / 63, stored as fp16 (d @0, dmin @2) and packed (@4). Returns the levels of all
// 256 elements in [0, nmax], rounded against the reconstructed d·sc and dmin·m.
void quantize_affine_superblock(const float* x, int nmax, std::uint8_t* blk, int* levels) {
  affine_fit fit[8];
  float max_scale = 0.0f;
  float max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    fit[j] = fit_affine_subblock(x + 32 * j, nmax);
    max_scale = fit[j].scale > max_scale ? fit[j].scale : max_scale;
    max_min = fit[j].min > max_min ? fit[j].min : max_min;
  }
  const std::uint16_t dh = fp16_scale(max_scale / 63.0f);
  const std::uint16_t mh = fp16_scale(max_min / 63.0f);
  store_u16le(blk, dh);
  store_u16le(blk + 2, mh);
  const float d = fp16_to_fp32(dh);
  const float dmin = fp16_to_fp32(mh);
  const float id = d > 0.0f ? 1.0f / d : 0.0f;
  const float idmin = dmin > 0.0f ? 1.0f / dmin : 0.0f;

  std::uint8_t sc[8];
  std::uint8_t mn[8];
  const float fnmax = static_cast<float>(nmax);
  for (int j = 0; j < 8; ++j) {
    sc[j] = static_cast<std::uint8_t>(quantize_level(fit[j].scale * id, 0.0f, 63.0f));
    mn[j] = static_cast<std::uint8_t>(quantize_level(fit[j].min * idmin, 0.0f, 63.0f));
    // The decoder computes y = (d·sc)·q − dmin·m; round each element against exactly those numbers.
    const float step = d * static_cast<float>(sc[j]);
    const float offset = dmin * static_cast<float>(mn[j]);
    const float inv = step > 0.0f ? 1.0f / step : 0.0f;
    for (int i = 0; i < 32; ++i) levels[32 * j + i] = quantize_level((x[32 * j + i] + offset) * inv, 0.0f, fnmax);
  }
  // get_scale_min_k4 layout: sub-blocks 0–3 keep their 6 bits in the low bits of bytes 0–3 (scale)
  // and 4–7 (min); sub-blocks 4–7 put their low nibbles in bytes 8–11 (scale low, min high) and their
  // top two bits in the top two bits of bytes 0–3 (scale) and 4–7 (min).
  std::uint8_t* s = blk + 4;
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<std::uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<std::uint8_t>(mn[j] | ((mn[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
  }
}

// Inverse of the packing above (ggml's get_scale_min_k4) for sub-block j of 8.
void unpack_scale_min(const std::uint8_t* s, int j, float& sc, float& m) {
  if (j < 4) {
    sc = static_cast<float>(s[j] & 63);
    m = static_cast<float>(s[j + 4] & 63);
  } else {
    sc = static_cast<float>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    m = static_cast<float>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Candidate level counts for the symmetric Q6_K sub-block fit: the extreme maps to −(32 + delta).
// Only coarser grids than "extreme at −32" pay off: on Gaussian data these five give a lower RMS
// error than nine candidates spread over ±1.
constexpr float k_symmetric_deltas[] = {-4.0f, -3.0f, -2.0f, -1.0f, 0.0f};

// Best signed scale s for one 16-element sub-block, x ≈ s·q with q ∈ [−32, 31]: for each candidate
// the least-squares scale is Σqx/Σq² and the squared error Σx² − (Σqx)²/Σq², so the candidate with
// the largest (Σqx)²/Σq² wins.
float fit_symmetric_subblock(const float* x) {
  float am = 0.0f;
  float xm = 0.0f;
  for (int i = 0; i < 16; ++i) {
    const float a = x[i] < 0.0f ? -x[i] : x[i];
    if (a > am) {
      am = a;
      xm = x[i];
    }
  }
  if (am == 0.0f) return 0.0f;
  // Best candidate so far as its (Σqx, Σq²); the comparison (Σqx)²/Σq² > best is cross-multiplied.
  double best_qx = 0.0;
  double best_qq = 0.0;
  for (const float delta : k_symmetric_deltas) {
    const float iscale = -(32.0f + delta) / xm;
    if (!std::isfinite(iscale)) break;  // subnormal extreme: keep the fallback
    // |x·iscale| ≤ 33 + rounding, so an integer clamp after rounding is enough (see the affine fit).
    float q[16];
    // Not unrolled: GCC 12 would unroll this nested 16-trip loop before vectorizing and then leave
    // it scalar.
#pragma GCC unroll 1
    for (int i = 0; i < 16; ++i) {
      int qi = static_cast<int>(round_half_even(x[i] * iscale));
      qi = qi < -32 ? -32 : qi;
      qi = qi > 31 ? 31 : qi;
      q[i] = static_cast<float>(qi);
    }
    const level_sums t = level_sums16(x, q);
    if (!(t.qq > 0.0)) continue;
    if (best_qq == 0.0 || t.qx * t.qx * best_qq > best_qx * best_qx * t.qq) {
      best_qx = t.qx;
      best_qq = t.qq;
    }
  }
  return best_qq > 0.0 ? static_cast<float>(best_qx / best_qq) : xm / -32.0f;
}

}  // namespace

// --- Q4_K: d @0, dmin @2, scales[12] @4, qs[128] @16 ----------------------------------------------
// Chunk c (elements 64c..64c+63) uses qs[32c..32c+31]: low nibbles are sub-block 2c, high 2c+1.

namespace {

// Shared by Q4_K and Q5_K: element 64c+l is d·sc(2c)·q − dmin·m(2c) with q the low nibble of qs[32c+l]
// (plus bit 2c of qh[l] as a fifth bit when qh is given), element 64c+32+l likewise with the high nibble
// and sub-block 2c+1.
void dequantize_affine_k(const std::uint8_t* blk, const std::uint8_t* qs, const std::uint8_t* qh, float* y) {
  const float d = fp16_to_fp32(load_u16le(blk));
  const float dmin = fp16_to_fp32(load_u16le(blk + 2));
  const std::uint8_t* s = blk + 4;
  for (int c = 0; c < 4; ++c) {
    float sc0, m0, sc1, m1;
    unpack_scale_min(s, 2 * c, sc0, m0);
    unpack_scale_min(s, 2 * c + 1, sc1, m1);
    const float d0 = d * sc0, o0 = dmin * m0, d1 = d * sc1, o1 = dmin * m1;
    const std::uint8_t* q = qs + 32 * c;
    for (int l = 0; l < 32; ++l) {
      const int lo = (q[l] & 0xF) + (qh ? ((qh[l] >> (2 * c)) & 1) << 4 : 0);
      const int hi = (q[l] >> 4) + (qh ? ((qh[l] >> (2 * c + 1)) & 1) << 4 : 0);
      y[64 * c + l] = d0 * static_cast<float>(lo) - o0;
      y[64 * c + 32 + l] = d1 * static_cast<float>(hi) - o1;
    }
  }
}

}  // namespace

void dequantize_block_q4_k(const std::uint8_t* blk, float* y) { dequantize_affine_k(blk, blk + 16, nullptr, y); }

void quantize_block_q4_k(const float* x, std::uint8_t* blk) {
  int lv[k_super];
  quantize_affine_superblock(x, 15, blk, lv);
  std::uint8_t* qs = blk + 16;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) qs[32 * c + l] = static_cast<std::uint8_t>(lv[64 * c + l] | (lv[64 * c + 32 + l] << 4));
  }
}

// --- Q5_K: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48 ------------------------------------
// As Q4_K, plus a fifth bit: element 64c+l takes bit 2c of qh[l], element 64c+32+l bit 2c+1.

void dequantize_block_q5_k(const std::uint8_t* blk, float* y) { dequantize_affine_k(blk, blk + 48, blk + 16, y); }

void quantize_block_q5_k(const float* x, std::uint8_t* blk) {
  int lv[k_super];
  quantize_affine_superblock(x, 31, blk, lv);
  std::uint8_t* qh = blk + 16;
  std::uint8_t* qs = blk + 48;
  for (int l = 0; l < 32; ++l) qh[l] = 0;
  for (int c = 0; c < 4; ++c) {
    for (int l = 0; l < 32; ++l) {
      const int lo = lv[64 * c + l];
      const int hi = lv[64 * c + 32 + l];
      qs[32 * c + l] = static_cast<std::uint8_t>((lo & 0xF) | ((hi & 0xF) << 4));
      qh[l] = static_cast<std::uint8_t>(qh[l] | ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
    }
  }
}

// --- Q6_K: ql[128] @0, qh[64] @128, scales[16] int8 @192, d fp16 @208 -------------------------------
// Half n (elements 128n..128n+127) uses ql[64n..], qh[32n..]; for l < 32 element 128n + 32k + l takes
// the low (k = 0, 1) or high (k = 2, 3) nibble of ql[64n + l + 32(k & 1)] and bits 2k..2k+1 of
// qh[32n + l]; sub-block j = element / 16 has scale[j]; y = d·scale·(q6 − 32).

void dequantize_block_q6_k(const std::uint8_t* blk, float* y) {
  const float d = fp16_to_fp32(load_u16le(blk + 208));
  for (int n = 0; n < 2; ++n) {
    const std::uint8_t* ql = blk + 64 * n;
    const std::uint8_t* qh = blk + 128 + 32 * n;
    const auto* sc = reinterpret_cast<const std::int8_t*>(blk + 192 + 8 * n);
    float* yy = y + 128 * n;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      yy[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      yy[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      yy[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      yy[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

void quantize_block_q6_k(const float* x, std::uint8_t* blk) {
  // Sub-block scales are signed; the one of largest magnitude maps to −128 (the extra negative level).
  float s[16];
  float sm = 0.0f;
  float am = 0.0f;
  for (int j = 0; j < 16; ++j) {
    s[j] = fit_symmetric_subblock(x + 16 * j);
    const float a = s[j] < 0.0f ? -s[j] : s[j];
    if (a > am) {
      am = a;
      sm = s[j];
    }
  }
  const std::uint16_t dh = fp16_scale(sm / -128.0f);
  store_u16le(blk + 208, dh);
  const float d = fp16_to_fp32(dh);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  int lv[k_super];
  for (int j = 0; j < 16; ++j) {
    const int sc = quantize_level(s[j] * id, -128.0f, 127.0f);
    blk[192 + j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(sc));
    const float step = d * static_cast<float>(sc);  // as the decoder forms d·scale
    const float inv = step != 0.0f ? 1.0f / step : 0.0f;
    for (int i = 0; i < 16; ++i) lv[16 * j + i] = quantize_level(x[16 * j + i] * inv, -32.0f, 31.0f) + 32;
  }
  for (int n = 0; n < 2; ++n) {
    std::uint8_t* ql = blk + 64 * n;
    std::uint8_t* qh = blk + 128 + 32 * n;
    const int* q = lv + 128 * n;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<std::uint8_t>((q[l] & 0xF) | ((q[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<std::uint8_t>((q[l + 32] & 0xF) | ((q[l + 96] & 0xF) << 4));
      qh[l] = static_cast<std::uint8_t>((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) |
                                        ((q[l + 96] >> 4) << 6));
    }
  }
}

}  // namespace worker::model::quant_detail
