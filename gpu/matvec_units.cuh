// The per-type "units" of the decode matvec (internal to the matvec*.cu kernels). A unit is the piece of one weight
// row a thread handles per step: one to three 16-byte loads of quantized bits plus its scales. For each
// type: count(cols) units per row; load_w() decodes a unit into registers once, load_x() fetches the
// matching activation bytes of one column, dot() returns the unit's fp32 contribution. Every float
// operation is an explicit _rn intrinsic so the compiler cannot contract it differently between
// template instantiations (batch invariance, see matvec.cuh).
//
// Loading is split in two so that the bytes of a unit can travel through shared memory (cp.async):
// ptrs() names the unit's `pieces` 16-byte pieces in global memory, small() loads its few scalar bytes
// (block scales, high bits) into registers, decode() turns pieces + scalars into w_t.
// load_w() is the three in a row; every kernel decodes with the same decode(), so the paths give
// identical bits.
#pragma once

#include <cstdint>

#include "gpu/matvec.cuh"
#include "gpu/quant_blocks.cuh"

namespace worker::gpu::mv {

using model::ggml_type;
using blocks::half_bits_to_float;
using blocks::ld16;

__device__ __forceinline__ int dp4a(int a, int b, int c) { return __dp4a(a, b, c); }

// n as a float, for the small integers the unit dots convert (scales, exact dp4a sums, |n| < 2^22):
// one I2F, exact. Session 13 replaced it by the bits of 1.5·2^23 + n read as a float minus 1.5·2^23
// (an integer add and a float subtract, full-rate, where I2F issues at 16 per SM and clock) — the
// same bits, two instructions. Measured against each other in one run (H200 S15-9, two binaries
// differing only here): equal at batch 1 (Q4_K_M 490.4 / 487.4 vs 490.4, Q8_0 416.2 / 415.7 vs
// 415.2 tok/s), I2F ahead at batch 16, where the multi-column kernels are compute-bound (Q4_K_M
// 739.5 / 740.3 vs 730.8, Q8_0 950.1 / 948.2 vs 928.9) and batch 4 (Q8_0 785.9 / 785.8 vs 781.9).
__device__ __forceinline__ float small_int_to_float(int n) { return __int2float_rn(n); }

// 6-bit scales and mins of sub-blocks 2c and 2c+1 (c = 0..3) of a Q4_K/Q5_K super-block whose header
// (d, dmin, 12 scale bytes s) is hd. The layout (model-facts.md): for j < 4 sc = s[j] & 63,
// m = s[j+4] & 63; for j ≥ 4 sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4, m = (s[j+4] >> 4) | (s[j] >> 6) << 4.
// Done four bytes at a time on the words (no per-lane branch on j: lanes of a warp hold different c),
// then the two bytes of this pair picked out; the integers are exactly those of the byte formulas.
__device__ __forceinline__ void k4_sc_m_pair(const uint4& hd, std::uint32_t c, int& sc0, int& m0, int& sc1, int& m1) {
  const std::uint32_t w0 = hd.y, w1 = hd.z, w2 = hd.w;  // scale bytes 0..3, 4..7, 8..11
  const std::uint32_t sc = c < 2 ? (w0 & 0x3F3F3F3Fu) : ((w2 & 0x0F0F0F0Fu) | ((w0 >> 2) & 0x30303030u));
  const std::uint32_t mn = c < 2 ? (w1 & 0x3F3F3F3Fu) : (((w2 >> 4) & 0x0F0F0F0Fu) | ((w1 >> 2) & 0x30303030u));
  // Sub-blocks 2c, 2c+1 are bytes 2(c&1), 2(c&1)+1 of the word, each picked out zero-extended by one
  // byte permute (selector 0x444k: byte k, then three bytes of the zero operand) instead of a shift and
  // a mask.
  const std::uint32_t sel0 = 0x4440u | (2 * (c & 1)), sel1 = sel0 + 1;
  sc0 = static_cast<int>(__byte_perm(sc, 0, sel0));
  sc1 = static_cast<int>(__byte_perm(sc, 0, sel1));
  m0 = static_cast<int>(__byte_perm(mn, 0, sel0));
  m1 = static_cast<int>(__byte_perm(mn, 0, sel1));
}
// d·sc and dmin·m of sub-blocks 2c and 2c+1 from a Q4_K/Q5_K super-block header hd (d, dmin as fp16).
__device__ __forceinline__ void k_scales(const uint4& hd, std::uint32_t c, float& dsc_lo, float& dsc_hi, float& dm_lo,
                                         float& dm_hi) {
  const float d = half_bits_to_float(static_cast<std::uint16_t>(hd.x & 0xFFFF));
  const float dmin = half_bits_to_float(static_cast<std::uint16_t>(hd.x >> 16));
  int sc0, m0, sc1, m1;
  k4_sc_m_pair(hd, c, sc0, m0, sc1, m1);
  dsc_lo = __fmul_rn(d, small_int_to_float(sc0));
  dsc_hi = __fmul_rn(d, small_int_to_float(sc1));
  dm_lo = __fmul_rn(dmin, small_int_to_float(m0));
  dm_hi = __fmul_rn(dmin, small_int_to_float(m1));
}
__device__ __forceinline__ int word(const uint4& v, int i) { return static_cast<int>(i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w); }

__device__ __forceinline__ std::size_t xq_off(const matvec_x& x, std::uint32_t c) { return static_cast<std::size_t>(c) * x.ld_q8; }
__device__ __forceinline__ float4 xds(const matvec_x& x, std::uint32_t c, std::uint32_t blk) {
  return __ldg(x.ds + static_cast<std::size_t>(c) * x.ld_ds + blk);
}
// 16 activation bytes of both levels at byte offset `off` of column c.
struct x16 {
  int h[4], l[4];
};
// HI_ONLY (a measuring probe, token hionly; not the product's numerics): the low level is neither
// loaded nor used — single-level int8 activations, to measure what the second level costs.
template <bool HI_ONLY = false>
__device__ __forceinline__ void load_x16(const matvec_x& x, std::size_t off, x16& o) {
  const uint4 a = ld16(x.q8 + off);
  o.h[0] = static_cast<int>(a.x); o.h[1] = static_cast<int>(a.y); o.h[2] = static_cast<int>(a.z); o.h[3] = static_cast<int>(a.w);
  if constexpr (HI_ONLY) {
    o.l[0] = o.l[1] = o.l[2] = o.l[3] = 0;
  } else {
    const uint4 b = ld16(x.q8_lo + off);
    o.l[0] = static_cast<int>(b.x); o.l[1] = static_cast<int>(b.y); o.l[2] = static_cast<int>(b.z); o.l[3] = static_cast<int>(b.w);
  }
}
// Byte offset of 16-byte chunk `chunk` of super-block b in the superblock-minor layout (XPERM in the
// K-quant dots): the layout's one definition, matvec.cuh sb_minor_byte, at element 256·b + 16·chunk;
// the ds of block 8·b + j are at sb_minor_block(8·b + j, nsb).
__device__ __forceinline__ std::size_t xperm_chunk(std::uint32_t nsb, std::uint32_t b, std::uint32_t chunk) {
  return sb_minor_byte(256 * b + 16 * chunk, nsb);
}
// Within one super-block the layout is linear in the chunk and block index: chunk i + k lies
// k·xperm_chunk_step(nsb) bytes after chunk i, block j + k k·xperm_ds_step(nsb) ds after block j. The
// dots address a unit's first chunk / block once and the others by these steps (fewer instructions
// than the layout formula per chunk: SASS of the Q4_K / Q6_K kernels, session 16).
__device__ __forceinline__ std::uint32_t xperm_chunk_step(std::uint32_t nsb) { return sb_minor_byte(16, nsb); }
__device__ __forceinline__ std::uint32_t xperm_ds_step(std::uint32_t nsb) { return sb_minor_block(1, nsb); }
// d_hi·ih + d_lo·il: the float part of a two-level dot product with integer sums ih (Σw·q_hi), il (Σw·q_lo).
template <bool HI_ONLY = false>
__device__ __forceinline__ float two_level(float dh, float dl, int ih, int il) {
  if constexpr (HI_ONLY) return __fmul_rn(dh, small_int_to_float(ih));
  return __fmaf_rn(dh, small_int_to_float(ih), __fmul_rn(dl, small_int_to_float(il)));
}
// Σ w·x over 16 bytes as d_hi·Σw·q_hi + d_lo·Σw·q_lo (integer sums exact).
__device__ __forceinline__ float dot16(const int w[4], const x16& x, float dh, float dl) {
  int ih = 0, il = 0;
  for (int i = 0; i < 4; ++i) {
    ih = dp4a(w[i], x.h[i], ih);
    il = dp4a(w[i], x.l[i], il);
  }
  return two_level(dh, dl, ih, il);
}

template <ggml_type T>
struct unit;

// Bytes between the pieces of consecutive rows of w (every unit's pieces lie in w.qs, whose rows are
// whole blocks of U::block_elems elements and U::block_bytes bytes).
template <class U>
__device__ __forceinline__ std::uint32_t row_bytes(const device_matrix& w) {
  return w.cols / U::block_elems * U::block_bytes;
}

// Σ (unsigned bytes of a)·(signed bytes of b) + c, exact.
__device__ __forceinline__ int dp4a_us(int a, int b, int c) {
  int d;
  asm("dp4a.u32.s32 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}

// Σw·q_hi and Σw·q_lo over 32 bytes (two x16), exact integers. HIGH_NIBBLES: the weights sit in the
// high nibble of each byte (16·q, read unsigned); the sums, 16× the nibbles', are shifted back
// exactly (every term is a multiple of 16).
template <bool HIGH_NIBBLES = false, bool HI_ONLY = false>
__device__ __forceinline__ void sums32(const int w[8], const x16 (&x)[2], int& ih, int& il) {
  auto dp = [](int a, int b, int c) { return HIGH_NIBBLES ? dp4a_us(a, b, c) : dp4a(a, b, c); };
  ih = 0;
  il = 0;
  for (int i = 0; i < 4; ++i) {
    ih = dp(w[i], x[0].h[i], ih);
    if constexpr (!HI_ONLY) il = dp(w[i], x[0].l[i], il);
  }
  for (int i = 0; i < 4; ++i) {
    ih = dp(w[4 + i], x[1].h[i], ih);
    if constexpr (!HI_ONLY) il = dp(w[4 + i], x[1].l[i], il);
  }
  if constexpr (HIGH_NIBBLES) {
    ih >>= 4;
    il >>= 4;
  }
}

// Q4_K: unit = the 32 qs bytes of super-block b, chunk c (0..3): all 32 elements of sub-block 2c (low
// nibbles) and of 2c+1 (high nibbles). 4 units per 256 elements: the header (d, dmin, 6-bit scales) is
// decoded once per 64 weights (ncu, run 12: with 32-element units that decode was a large part of the
// instructions per weight byte).
template <>
struct unit<ggml_type::q4_k> {
  static constexpr bool q8 = true;
  __host__ __device__ static std::uint32_t count(std::uint32_t cols) { return cols / 256 * 4; }
  // hi: the high nibbles left in place (16·q; one instruction per word less than shifting them down).
  struct w_t { int lo[8], hi[8]; float dsc_lo, dsc_hi, dm_lo, dm_hi; };
  struct x_t { x16 a[2], b[2]; float4 ds_a, ds_b; };  // sub-blocks 2c (low nibbles) and 2c+1 (high nibbles)
  static constexpr int pieces = 3;  // header (d, dmin, scales), qs bytes 0..15 and 16..31 of the chunk
  struct small_t {};
  static constexpr std::uint32_t block_elems = 256, block_bytes = 144;  // a block in w.qs
  __device__ static void ptrs(const device_matrix& w, std::uint32_t row, std::uint32_t u, const void* p[pieces]) {
    const std::uint32_t b = u >> 2, c = u & 3;
    const std::uint8_t* blk = reinterpret_cast<const std::uint8_t*>(w.qs) +
                              (static_cast<std::size_t>(row) * (w.cols / block_elems) + b) * block_bytes;
    p[0] = blk;
    p[1] = blk + 16 + 32 * c;
    p[2] = blk + 32 + 32 * c;
  }
  __device__ static small_t small(const device_matrix&, std::uint32_t, std::uint32_t) { return {}; }
  __device__ static void decode(const uint4 pc[pieces], small_t, std::uint32_t u, w_t& o) {
    const std::uint32_t c = u & 3;
    const uint4 hd = pc[0];
    for (int i = 0; i < 4; ++i) {
      o.lo[i] = word(pc[1], i) & 0x0F0F0F0F;
      o.hi[i] = static_cast<int>(static_cast<std::uint32_t>(word(pc[1], i)) & 0xF0F0F0F0u);
      o.lo[4 + i] = word(pc[2], i) & 0x0F0F0F0F;
      o.hi[4 + i] = static_cast<int>(static_cast<std::uint32_t>(word(pc[2], i)) & 0xF0F0F0F0u);
    }
    k_scales(hd, c, o.dsc_lo, o.dsc_hi, o.dm_lo, o.dm_hi);
  }
  __device__ static void load_x(const matvec_x& x, std::uint32_t col, std::uint32_t u, x_t& o) {
    const std::uint32_t b = u >> 2, c = u & 3;
    const std::uint32_t qb = b * 8 + 2 * c;
    const std::size_t base = xq_off(x, col);
    load_x16(x, base + qb * 32, o.a[0]);
    load_x16(x, base + qb * 32 + 16, o.a[1]);
    load_x16(x, base + (qb + 1) * 32, o.b[0]);
    load_x16(x, base + (qb + 1) * 32 + 16, o.b[1]);
    o.ds_a = xds(x, col, qb);
    o.ds_b = xds(x, col, qb + 1);
  }
  // Σ over sub-block j of (d·sc_j·q − dmin·m_j)·x = d·sc_j·Σq·x − dmin·m_j·Σx (Σx = s_hi + s_lo), from
  // the four exact integer sums Σq·q_hi, Σq·q_lo of sub-blocks 2c (a) and 2c+1 (b). The tensor-core
  // kernel (matvec_fanout.cu) computes the same integers with mma and finishes with this function.
  template <bool HI_ONLY = false>
  __device__ static float finish(float dsc_lo, float dsc_hi, float dm_lo, float dm_hi, int ih_a, int il_a, int ih_b,
                                 int il_b, const float4& ds_a, const float4& ds_b) {
    const float s = __fmaf_rn(dsc_lo, two_level<HI_ONLY>(ds_a.x, ds_a.z, ih_a, il_a),
                              __fmul_rn(dsc_hi, two_level<HI_ONLY>(ds_b.x, ds_b.z, ih_b, il_b)));
    const float m = HI_ONLY ? __fmaf_rn(dm_lo, ds_a.y, __fmul_rn(dm_hi, ds_b.y))
                            : __fmaf_rn(dm_lo, __fadd_rn(ds_a.y, ds_a.w), __fmul_rn(dm_hi, __fadd_rn(ds_b.y, ds_b.w)));
    return __fsub_rn(s, m);
  }
  __device__ static float dot(const w_t& w, const x_t& x) {
    int ih_a, il_a, ih_b, il_b;
    sums32(w.lo, x.a, ih_a, il_a);
    sums32<true>(w.hi, x.b, ih_b, il_b);
    return finish(w.dsc_lo, w.dsc_hi, w.dm_lo, w.dm_hi, ih_a, il_a, ih_b, il_b, x.ds_a, x.ds_b);
  }
  // The dots of unit u of R rows from their pieces pc[i] (ptrs() order), column col: sub-block 2c (low
  // nibbles) of every row first, then 2c+1 (high nibbles), so only one sub-block's activations (16
  // registers, not load_x's 32) are live beside the rows' pieces. The integer sums are exact and each
  // row ends in the same finish(), so the bits are those of decode() + dot().
  // XPERM: the activations in the superblock-minor layout (nsb = K / 256), the same values.
  template <int R, bool HI_ONLY = false, bool XPERM = false>
  __device__ static void dot_rows(const matvec_x& x, std::uint32_t col, std::uint32_t u, const uint4 (&pc)[R][pieces],
                                  float (&out)[R], std::uint32_t nsb = 0) {
    const std::uint32_t c = u & 3, qb = (u >> 2) * 8 + 2 * c;
    const std::size_t base = xq_off(x, col);
    // Byte offset of the unit's activation chunk k (sub-block 2c: 0, 1; 2c + 1: 2, 3).
    const std::size_t first = XPERM ? base + xperm_chunk(nsb, u >> 2, 4 * c) : base + qb * 32;
    const std::uint32_t step = XPERM ? xperm_chunk_step(nsb) : 16;
    auto chunk = [&](std::uint32_t k) -> std::size_t { return first + k * step; };
    int ih_a[R], il_a[R], ih_b[R], il_b[R];
    {
      x16 xa[2];
      load_x16<HI_ONLY>(x, chunk(0), xa[0]);
      load_x16<HI_ONLY>(x, chunk(1), xa[1]);
#pragma unroll
      for (int i = 0; i < R; ++i) {
        int lo[8];
        for (int k = 0; k < 4; ++k) {
          lo[k] = word(pc[i][1], k) & 0x0F0F0F0F;
          lo[4 + k] = word(pc[i][2], k) & 0x0F0F0F0F;
        }
        sums32<false, HI_ONLY>(lo, xa, ih_a[i], il_a[i]);
      }
    }
    {
      x16 xb[2];
      load_x16<HI_ONLY>(x, chunk(2), xb[0]);
      load_x16<HI_ONLY>(x, chunk(3), xb[1]);
#pragma unroll
      for (int i = 0; i < R; ++i) {
        int hi[8];
        for (int k = 0; k < 4; ++k) {
          hi[k] = static_cast<int>(static_cast<std::uint32_t>(word(pc[i][1], k)) & 0xF0F0F0F0u);
          hi[4 + k] = static_cast<int>(static_cast<std::uint32_t>(word(pc[i][2], k)) & 0xF0F0F0F0u);
        }
        sums32<true, HI_ONLY>(hi, xb, ih_b[i], il_b[i]);
      }
    }
    const float4* ds_at = XPERM ? &x.ds[static_cast<std::size_t>(col) * x.ld_ds + sb_minor_block(8 * (u >> 2) + 2 * c, nsb)]
                                : &x.ds[static_cast<std::size_t>(col) * x.ld_ds + qb];
    const float4 ds_a = __ldg(ds_at), ds_b = __ldg(ds_at + (XPERM ? xperm_ds_step(nsb) : 1));
#pragma unroll
    for (int i = 0; i < R; ++i) {
      float dsc_lo, dsc_hi, dm_lo, dm_hi;
      k_scales(pc[i][0], c, dsc_lo, dsc_hi, dm_lo, dm_hi);
      out[i] = finish<HI_ONLY>(dsc_lo, dsc_hi, dm_lo, dm_hi, ih_a[i], il_a[i], ih_b[i], il_b[i], ds_a, ds_b);
    }
  }
};

// Q5_K: the Q4_K layout plus a fifth bit per element from qh[32] (bit j of qh[l] for sub-block j).
// unit = 16 qs bytes of super-block b, chunk c (0..3), half h: 16 elements of sub-block 2c (low
// nibbles) and 16 of sub-block 2c+1 (high nibbles). 8 units per 256 elements.
template <>
struct unit<ggml_type::q5_k> {
  static constexpr bool q8 = true;
  __host__ __device__ static std::uint32_t count(std::uint32_t cols) { return cols / 256 * 8; }
  struct w_t { int lo[4], hi[4]; float dsc_lo, dsc_hi, dm_lo, dm_hi; };
  struct x_t { x16 a, b; float4 ds_a, ds_b; };  // sub-blocks 2c (low nibbles) and 2c+1 (high nibbles)
  static constexpr int pieces = 3;  // header, 16 qh bytes, 16 qs bytes
  struct small_t {};
  static constexpr std::uint32_t block_elems = 256, block_bytes = 176;  // a block in w.qs
  __device__ static void ptrs(const device_matrix& w, std::uint32_t row, std::uint32_t u, const void* p[pieces]) {
    const std::uint32_t b = u >> 3, c = (u >> 1) & 3, h = u & 1;
    const std::uint8_t* blk = reinterpret_cast<const std::uint8_t*>(w.qs) +
                              (static_cast<std::size_t>(row) * (w.cols / block_elems) + b) * block_bytes;
    p[0] = blk;
    p[1] = blk + 16 + 16 * h;
    p[2] = blk + 48 + 32 * c + 16 * h;
  }
  __device__ static small_t small(const device_matrix&, std::uint32_t, std::uint32_t) { return {}; }
  __device__ static void decode(const uint4 pc[pieces], small_t, std::uint32_t u, w_t& o) {
    const std::uint32_t c = (u >> 1) & 3, h = u & 1;
    const uint4 hd = pc[0];
    const uint4 qh = pc[1];
    const uint4 q = pc[2];
    for (int i = 0; i < 4; ++i) {
      const int hb = word(qh, i);
      o.lo[i] = (word(q, i) & 0x0F0F0F0F) | (((hb >> (2 * c)) & 0x01010101) << 4);
      o.hi[i] = ((word(q, i) >> 4) & 0x0F0F0F0F) | (((hb >> (2 * c + 1)) & 0x01010101) << 4);
    }
    k_scales(hd, c, o.dsc_lo, o.dsc_hi, o.dm_lo, o.dm_hi);
    if (h != 0) {  // the min term of a whole sub-block comes with its first half only
      o.dm_lo = 0.0f;
      o.dm_hi = 0.0f;
    }
  }
  __device__ static void load_x(const matvec_x& x, std::uint32_t col, std::uint32_t u, x_t& o) {
    const std::uint32_t b = u >> 3, c = (u >> 1) & 3, h = u & 1;
    const std::uint32_t qb = b * 8 + 2 * c;
    const std::size_t base = xq_off(x, col);
    load_x16(x, base + qb * 32 + 16 * h, o.a);
    load_x16(x, base + (qb + 1) * 32 + 16 * h, o.b);
    o.ds_a = xds(x, col, qb);
    o.ds_b = xds(x, col, qb + 1);
  }
  // As Q4_K's, over 16 elements of each sub-block; the min term (a whole sub-block's) comes with h = 0.
  __device__ static float dot(const w_t& w, const x_t& x) {
    const float s = __fmaf_rn(w.dsc_lo, dot16(w.lo, x.a, x.ds_a.x, x.ds_a.z), __fmul_rn(w.dsc_hi, dot16(w.hi, x.b, x.ds_b.x, x.ds_b.z)));
    const float m = __fmaf_rn(w.dm_lo, __fadd_rn(x.ds_a.y, x.ds_a.w), __fmul_rn(w.dm_hi, __fadd_rn(x.ds_b.y, x.ds_b.w)));
    return __fsub_rn(s, m);
  }
};

// Q6_K (split layout): unit = half n (0/1) of super-block b, 16-element slice h: three 16-byte loads
// (ql at 64n+16h, ql at 64n+32+16h, qh at 128+32n+16h) give 4 groups g of 16 elements at
// 128n+32g+16h, each with its own int8 scale sc[8n+h+2g]. 4 units per 256 elements.
template <>
struct unit<ggml_type::q6_k> {
  static constexpr bool q8 = true;
  __host__ __device__ static std::uint32_t count(std::uint32_t cols) { return cols / 256 * 4; }
  // q: the 6-bit weights as unsigned bytes 0..63, not q − 32: the −32 is applied once per unit and
  // column on the activation side (x_t::off_h/off_l = −32·Σq_hi, −32·Σq_lo of a group's 16 bytes, the
  // start of the weights' integer sums). The integers are those of Σ(q − 32)·x term by term, so the
  // bits are unchanged, while the three per-byte operations of the subtraction (per 4 weights, per
  // row) become one dp4a per 4 activations shared by the rows of a task.
  struct w_t { int q[4][4]; float dsc[4]; };
  struct x_t { x16 q[4]; float dh[4], dl[4]; int off_h[4], off_l[4]; };
  static constexpr int pieces = 3;  // ql, ql, qh
  struct small_t { uint2 sc8; std::uint16_t d; };
  static constexpr std::uint32_t block_elems = 256, block_bytes = 192;  // a block's ql and qh in w.qs (split layout)
  __device__ static void ptrs(const device_matrix& w, std::uint32_t row, std::uint32_t u, const void* p[pieces]) {
    const std::uint32_t b = u >> 2, n = (u >> 1) & 1, h = u & 1;
    const std::size_t blk_index = static_cast<std::size_t>(row) * (w.cols / block_elems) + b;
    const std::uint8_t* base = reinterpret_cast<const std::uint8_t*>(w.qs) + blk_index * block_bytes;
    p[0] = base + 64 * n + 16 * h;
    p[1] = base + 64 * n + 32 + 16 * h;
    p[2] = base + 128 + 32 * n + 16 * h;
  }
  __device__ static small_t small(const device_matrix& w, std::uint32_t row, std::uint32_t u) {
    const std::uint32_t b = u >> 2, n = (u >> 1) & 1;
    const std::size_t blk_index = static_cast<std::size_t>(row) * (w.cols / block_elems) + b;
    return {__ldg(reinterpret_cast<const uint2*>(w.aux + blk_index * 16 + 8 * n)), __ldg(w.d + blk_index)};
  }
  __device__ static void decode(const uint4 pc[pieces], small_t sm, std::uint32_t u, w_t& o) {
    const std::uint32_t h = u & 1;
    const uint4 A = pc[0];
    const uint4 B = pc[1];
    const uint4 H = pc[2];
    const uint2 sc8 = sm.sc8;
    const float d = half_bits_to_float(sm.d);
    for (int i = 0; i < 4; ++i) {
      const int a = word(A, i), bq = word(B, i), hh = word(H, i);
      const int v0 = (a & 0x0F0F0F0F) | ((hh << 4) & 0x30303030);
      const int v1 = (bq & 0x0F0F0F0F) | ((hh << 2) & 0x30303030);
      const int v2 = ((a >> 4) & 0x0F0F0F0F) | (hh & 0x30303030);
      const int v3 = ((bq >> 4) & 0x0F0F0F0F) | ((hh >> 2) & 0x30303030);
      o.q[0][i] = v0;  // unsigned bytes; the −32 is in x_t's off_h / off_l
      o.q[1][i] = v1;
      o.q[2][i] = v2;
      o.q[3][i] = v3;
    }
    for (int g = 0; g < 4; ++g) {
      const int k = static_cast<int>(h) + 2 * g;  // byte of sc8
      const std::uint32_t wd = k < 4 ? sc8.x : sc8.y;
      const int sc = static_cast<int>(static_cast<std::int8_t>((wd >> (8 * (k & 3))) & 0xFF));
      o.dsc[g] = __fmul_rn(d, small_int_to_float(sc));
    }
  }
  __device__ static void load_x(const matvec_x& x, std::uint32_t col, std::uint32_t u, x_t& o) {
    const std::uint32_t b = u >> 2, n = (u >> 1) & 1, h = u & 1;
    const std::size_t base = xq_off(x, col);
    for (int g = 0; g < 4; ++g) {
      const std::uint32_t qb = b * 8 + 4 * n + g;
      load_x16(x, base + qb * 32 + 16 * h, o.q[g]);
      const float4 d = xds(x, col, qb);
      o.dh[g] = d.x;
      o.dl[g] = d.z;
      // −32·Σ of the group's activation bytes, per level (0xE0 = −32 as a signed byte).
      int oh = 0, ol = 0;
      for (int i = 0; i < 4; ++i) {
        oh = dp4a(o.q[g].h[i], static_cast<int>(0xE0E0E0E0u), oh);
        ol = dp4a(o.q[g].l[i], static_cast<int>(0xE0E0E0E0u), ol);
      }
      o.off_h[g] = oh;
      o.off_l[g] = ol;
    }
  }
  __device__ static float dot(const w_t& w, const x_t& x) {
    float s = 0.0f;
    for (int g = 0; g < 4; ++g) {
      // Σ(q − 32)·x_hi = −32·Σx_hi + Σq·x_hi with q read unsigned: the same exact integers as dot16's
      // signed sums, so dot16's float expression gives the same bits.
      int ih = x.off_h[g], il = x.off_l[g];
      for (int i = 0; i < 4; ++i) {
        ih = dp4a_us(w.q[g][i], x.q[g].h[i], ih);
        il = dp4a_us(w.q[g][i], x.q[g].l[i], il);
      }
      s = __fmaf_rn(w.dsc[g], two_level(x.dh[g], x.dl[g], ih, il), s);
    }
    return s;
  }
  // Word i of group g of a unit from its pieces (decode()'s v_g), unsigned bytes 0..63.
  __device__ static int group_word(const uint4 (&pc)[pieces], int g, int i) {
    const int a = word(pc[0], i), bq = word(pc[1], i), hh = word(pc[2], i);
    switch (g) {
      case 0: return (a & 0x0F0F0F0F) | ((hh << 4) & 0x30303030);
      case 1: return (bq & 0x0F0F0F0F) | ((hh << 2) & 0x30303030);
      case 2: return ((a >> 4) & 0x0F0F0F0F) | (hh & 0x30303030);
      default: return ((bq >> 4) & 0x0F0F0F0F) | ((hh >> 2) & 0x30303030);
    }
  }
  // The dots of unit u of R rows from their pieces and small bytes, column col, a group at a time: only
  // one group's activations (8 registers and its offsets) are live beside the rows' pieces. Per row
  // the groups are added in dot()'s order with dot()'s integers, so the bits are those of decode() +
  // load_x() + dot().
  // XPERM: the activations in the superblock-minor layout (nsb = K / 256), the same values.
  template <int R, bool HI_ONLY = false, bool XPERM = false>
  __device__ static void dot_rows(const matvec_x& x, std::uint32_t col, std::uint32_t u, const uint4 (&pc)[R][pieces],
                                  const small_t (&sm)[R], float (&out)[R], std::uint32_t nsb = 0) {
    const std::uint32_t b = u >> 2, n = (u >> 1) & 1, h = u & 1;
    const std::size_t base = xq_off(x, col);
    // Group g's chunk 8n + 2g + h of super-block b (standard layout: byte (8b + 4n + g)·32 + 16h) and
    // its ds, addressed from group 0's by the layout's steps.
    const std::size_t first = XPERM ? base + xperm_chunk(nsb, b, 8 * n + h) : base + (b * 8 + 4 * n) * 32 + 16 * h;
    const std::uint32_t step = XPERM ? 2 * xperm_chunk_step(nsb) : 32;
    const float4* ds0 = XPERM ? &x.ds[static_cast<std::size_t>(col) * x.ld_ds + sb_minor_block(8 * b + 4 * n, nsb)]
                              : &x.ds[static_cast<std::size_t>(col) * x.ld_ds + b * 8 + 4 * n];
    const std::uint32_t ds_step = XPERM ? xperm_ds_step(nsb) : 1;
#pragma unroll
    for (int i = 0; i < R; ++i) out[i] = 0.0f;
#pragma unroll
    for (int g = 0; g < 4; ++g) {
      x16 xq;
      load_x16<HI_ONLY>(x, first + static_cast<std::uint32_t>(g) * step, xq);
      const float4 ds = __ldg(ds0 + static_cast<std::uint32_t>(g) * ds_step);
      int oh = 0, ol = 0;
      for (int k = 0; k < 4; ++k) {
        oh = dp4a(xq.h[k], static_cast<int>(0xE0E0E0E0u), oh);
        if constexpr (!HI_ONLY) ol = dp4a(xq.l[k], static_cast<int>(0xE0E0E0E0u), ol);
      }
      const int k8 = static_cast<int>(h) + 2 * g;  // byte of sc8
#pragma unroll
      for (int i = 0; i < R; ++i) {
        int ih = oh, il = ol;
        for (int k = 0; k < 4; ++k) {
          const int v = group_word(pc[i], g, k);
          ih = dp4a_us(v, xq.h[k], ih);
          if constexpr (!HI_ONLY) il = dp4a_us(v, xq.l[k], il);
        }
        const std::uint32_t wd = k8 < 4 ? sm[i].sc8.x : sm[i].sc8.y;
        const int sc = static_cast<int>(static_cast<std::int8_t>((wd >> (8 * (k8 & 3))) & 0xFF));
        const float dsc = __fmul_rn(half_bits_to_float(sm[i].d), small_int_to_float(sc));
        out[i] = __fmaf_rn(dsc, two_level<HI_ONLY>(ds.x, ds.z, ih, il), out[i]);
      }
    }
  }
};

// Q8_0 (split layout): unit = one 32-element block.
template <>
struct unit<ggml_type::q8_0> {
  static constexpr bool q8 = true;
  __host__ __device__ static std::uint32_t count(std::uint32_t cols) { return cols / 32; }
  struct w_t { int q[8]; float d; };
  struct x_t { x16 a, b; float4 ds; };
  static constexpr int pieces = 2;
  struct small_t { std::uint16_t d; };
  static constexpr std::uint32_t block_elems = 32, block_bytes = 32;  // a block's quants in w.qs (split layout)
  __device__ static void ptrs(const device_matrix& w, std::uint32_t row, std::uint32_t u, const void* p[pieces]) {
    const std::size_t bi = static_cast<std::size_t>(row) * (w.cols / block_elems) + u;
    p[0] = w.qs + bi * block_bytes;
    p[1] = w.qs + bi * block_bytes + 16;
  }
  __device__ static small_t small(const device_matrix& w, std::uint32_t row, std::uint32_t u) {
    return {__ldg(w.d + static_cast<std::size_t>(row) * (w.cols / block_elems) + u)};
  }
  __device__ static void decode(const uint4 pc[pieces], small_t sm, std::uint32_t, w_t& o) {
    const uint4 a = pc[0], b = pc[1];
    for (int i = 0; i < 4; ++i) {
      o.q[i] = word(a, i);
      o.q[4 + i] = word(b, i);
    }
    o.d = half_bits_to_float(sm.d);
  }
  template <bool HI_ONLY = false>
  __device__ static void load_x(const matvec_x& x, std::uint32_t col, std::uint32_t u, x_t& o) {
    const std::size_t base = xq_off(x, col) + u * 32;
    load_x16<HI_ONLY>(x, base, o.a);
    load_x16<HI_ONLY>(x, base + 16, o.b);
    o.ds = xds(x, col, u);
  }
  template <bool HI_ONLY = false>
  __device__ static float dot(const w_t& w, const x_t& x) {
    int ih = 0, il = 0;
    for (int i = 0; i < 4; ++i) {
      ih = dp4a(w.q[i], x.a.h[i], ih);
      if constexpr (!HI_ONLY) il = dp4a(w.q[i], x.a.l[i], il);
    }
    for (int i = 0; i < 4; ++i) {
      ih = dp4a(w.q[4 + i], x.b.h[i], ih);
      if constexpr (!HI_ONLY) il = dp4a(w.q[4 + i], x.b.l[i], il);
    }
    return __fmul_rn(w.d, two_level<HI_ONLY>(x.ds.x, x.ds.z, ih, il));
  }
};

// Q4_0 (split layout): unit = one block; q - 8 folded in as d·(dx·Σq·x - 8·s).
template <>
struct unit<ggml_type::q4_0> {
  static constexpr bool q8 = true;
  __host__ __device__ static std::uint32_t count(std::uint32_t cols) { return cols / 32; }
  struct w_t { int lo[4], hi[4]; float d; };
  struct x_t { x16 a, b; float4 ds; };
  static constexpr int pieces = 1;
  struct small_t { std::uint16_t d; };
  static constexpr std::uint32_t block_elems = 32, block_bytes = 16;  // a block's quants in w.qs (split layout)
  __device__ static void ptrs(const device_matrix& w, std::uint32_t row, std::uint32_t u, const void* p[pieces]) {
    p[0] = w.qs + (static_cast<std::size_t>(row) * (w.cols / block_elems) + u) * block_bytes;
  }
  __device__ static small_t small(const device_matrix& w, std::uint32_t row, std::uint32_t u) {
    return {__ldg(w.d + static_cast<std::size_t>(row) * (w.cols / block_elems) + u)};
  }
  __device__ static void decode(const uint4 pc[pieces], small_t sm, std::uint32_t, w_t& o) {
    const uint4 q = pc[0];
    for (int i = 0; i < 4; ++i) {
      o.lo[i] = word(q, i) & 0x0F0F0F0F;
      o.hi[i] = (word(q, i) >> 4) & 0x0F0F0F0F;
    }
    o.d = half_bits_to_float(sm.d);
  }
  __device__ static void load_x(const matvec_x& x, std::uint32_t col, std::uint32_t u, x_t& o) {
    const std::size_t base = xq_off(x, col) + u * 32;
    load_x16(x, base, o.a);
    load_x16(x, base + 16, o.b);
    o.ds = xds(x, col, u);
  }
  // d·(Σ q·x − off·Σx) with the offset folded in through s = d·Σq of each level.
  __device__ static float dot_offset(const w_t& w, const x_t& x, float off) {
    int ih = 0, il = 0;
    for (int i = 0; i < 4; ++i) {
      ih = dp4a(w.lo[i], x.a.h[i], ih);
      il = dp4a(w.lo[i], x.a.l[i], il);
    }
    for (int i = 0; i < 4; ++i) {
      ih = dp4a(w.hi[i], x.b.h[i], ih);
      il = dp4a(w.hi[i], x.b.l[i], il);
    }
    const float v = __fmaf_rn(x.ds.x, small_int_to_float(ih), __fmul_rn(x.ds.z, small_int_to_float(il)));
    return __fmul_rn(w.d, __fsub_rn(v, __fmul_rn(off, __fadd_rn(x.ds.y, x.ds.w))));
  }
  __device__ static float dot(const w_t& w, const x_t& x) { return dot_offset(w, x, 8.0f); }
};

// Spreads bits 0..3 of v to bit 4 of bytes 0..3 (no carries: partial products never overlap).
__device__ __forceinline__ int spread4_to_bit4(std::uint32_t v) {
  return static_cast<int>((((v & 0xF) * 0x00204081u) & 0x01010101u) << 4);
}

// Q5_0 (split layout): unit = one block; q - 16 folded in like Q4_0.
template <>
struct unit<ggml_type::q5_0> {
  static constexpr bool q8 = true;
  __host__ __device__ static std::uint32_t count(std::uint32_t cols) { return cols / 32; }
  using w_t = unit<ggml_type::q4_0>::w_t;
  using x_t = unit<ggml_type::q4_0>::x_t;
  static constexpr int pieces = 1;
  struct small_t { std::uint32_t qh; std::uint16_t d; };
  static constexpr std::uint32_t block_elems = 32, block_bytes = 16;  // a block's quants in w.qs (split layout)
  __device__ static void ptrs(const device_matrix& w, std::uint32_t row, std::uint32_t u, const void* p[pieces]) {
    p[0] = w.qs + (static_cast<std::size_t>(row) * (w.cols / block_elems) + u) * block_bytes;
  }
  __device__ static small_t small(const device_matrix& w, std::uint32_t row, std::uint32_t u) {
    const std::size_t bi = static_cast<std::size_t>(row) * (w.cols / block_elems) + u;
    return {__ldg(reinterpret_cast<const std::uint32_t*>(w.aux) + bi), __ldg(w.d + bi)};
  }
  __device__ static void decode(const uint4 pc[pieces], small_t sm, std::uint32_t, w_t& o) {
    const uint4 q = pc[0];
    const std::uint32_t qh = sm.qh;
    for (int i = 0; i < 4; ++i) {
      o.lo[i] = (word(q, i) & 0x0F0F0F0F) | spread4_to_bit4(qh >> (4 * i));
      o.hi[i] = ((word(q, i) >> 4) & 0x0F0F0F0F) | spread4_to_bit4(qh >> (16 + 4 * i));
    }
    o.d = half_bits_to_float(sm.d);
  }
  __device__ static void load_x(const matvec_x& x, std::uint32_t col, std::uint32_t u, x_t& o) {
    unit<ggml_type::q4_0>::load_x(x, col, u, o);
  }
  __device__ static float dot(const w_t& w, const x_t& x) { return unit<ggml_type::q4_0>::dot_offset(w, x, 16.0f); }
};

// Float weights: unit = 16 bytes (8 halves or 4 floats) against fp32 activations, summed in order.
template <ggml_type T>
struct float_unit {
  static constexpr bool q8 = false;
  static constexpr int per = T == ggml_type::f32 ? 4 : 8;  // elements per unit
  __host__ __device__ static std::uint32_t count(std::uint32_t cols) { return cols / per; }
  struct w_t { float v[per]; };
  struct x_t { float v[per]; };
  static constexpr int pieces = 1;
  struct small_t {};
  static constexpr std::uint32_t block_elems = 1, block_bytes = T == ggml_type::f32 ? 4 : 2;  // an element
  __device__ static void ptrs(const device_matrix& w, std::uint32_t row, std::uint32_t u, const void* p[pieces]) {
    const std::size_t e = static_cast<std::size_t>(row) * w.cols + static_cast<std::size_t>(u) * per;
    p[0] = w.qs + e * block_bytes;
  }
  __device__ static small_t small(const device_matrix&, std::uint32_t, std::uint32_t) { return {}; }
  __device__ static void decode(const uint4 pc[pieces], small_t, std::uint32_t, w_t& o) {
    if constexpr (T == ggml_type::f32) {
      const uint4 a = pc[0];
      o.v[0] = __uint_as_float(a.x); o.v[1] = __uint_as_float(a.y); o.v[2] = __uint_as_float(a.z); o.v[3] = __uint_as_float(a.w);
    } else {
      const uint4 a = pc[0];
      for (int i = 0; i < 4; ++i) {
        const std::uint32_t p = static_cast<std::uint32_t>(word(a, i));
        if constexpr (T == ggml_type::f16) {
          o.v[2 * i] = half_bits_to_float(static_cast<std::uint16_t>(p & 0xFFFF));
          o.v[2 * i + 1] = half_bits_to_float(static_cast<std::uint16_t>(p >> 16));
        } else {
          o.v[2 * i] = __uint_as_float(p << 16);
          o.v[2 * i + 1] = __uint_as_float(p & 0xFFFF0000u);
        }
      }
    }
  }
  __device__ static void load_x(const matvec_x& x, std::uint32_t col, std::uint32_t u, x_t& o) {
    const float4* p = reinterpret_cast<const float4*>(x.f32 + static_cast<std::size_t>(col) * x.ld_f32 + u * per);
    for (int i = 0; i < per / 4; ++i) {
      const float4 a = __ldg(p + i);
      o.v[4 * i] = a.x; o.v[4 * i + 1] = a.y; o.v[4 * i + 2] = a.z; o.v[4 * i + 3] = a.w;
    }
  }
  __device__ static float dot(const w_t& w, const x_t& x) {
    float s = __fmul_rn(w.v[0], x.v[0]);
    for (int i = 1; i < per; ++i) s = __fmaf_rn(w.v[i], x.v[i], s);
    return s;
  }
};
template <> struct unit<ggml_type::f16> : float_unit<ggml_type::f16> {};
template <> struct unit<ggml_type::bf16> : float_unit<ggml_type::bf16> {};
template <> struct unit<ggml_type::f32> : float_unit<ggml_type::f32> {};

// acc[r][c] += the unit's contribution of row r against column c, for every column c < ncols: one
// activation load per column serves all RR rows. Every kernel family adds in this order.
template <ggml_type T, int RR, int NC>
__device__ __forceinline__ void add_unit(const typename unit<T>::w_t (&wr)[RR], const matvec_x& x, std::uint32_t u,
                                         std::uint32_t ncols, float (&acc)[RR][NC]) {
#pragma unroll
  for (int c = 0; c < NC; ++c) {
    if (c < static_cast<int>(ncols)) {
      typename unit<T>::x_t xv;
      unit<T>::load_x(x, static_cast<std::uint32_t>(c), u, xv);
#pragma unroll
      for (int r = 0; r < RR; ++r) acc[r][c] = __fadd_rn(acc[r][c], unit<T>::dot(wr[r], xv));
    }
  }
}

// The unit read straight from global memory into registers.
template <ggml_type T>
__device__ __forceinline__ void load_w(const device_matrix& w, std::uint32_t row, std::uint32_t u, typename unit<T>::w_t& o) {
  using U = unit<T>;
  const void* p[U::pieces];
  U::ptrs(w, row, u, p);
  uint4 pc[U::pieces];
#pragma unroll
  for (int i = 0; i < U::pieces; ++i) pc[i] = ld16(p[i]);
  U::decode(pc, U::small(w, row, u), u, o);
}

}  // namespace worker::gpu::mv
