// Decode matrix-vector products: y[c][m] = Σ_k W[m][k]·x[c][k] for 1..16 activation columns (one per
// sequence in a decode batch), streaming each weight byte once.
//
// Quantized weights (Q4_K Q5_K Q6_K Q8_0 Q4_0 Q5_0) multiply two-level int8 activations (quantize_q8:
// per block of 32, x ≈ d_hi·q_hi + d_lo·q_lo, see q8_act.cuh) with __dp4a: integer dot products per
// sub-block and level, then fp32 scales. Float weights (F16 BF16 F32) multiply fp32 activations.
// Accumulation is fp32.
//
// Work split: one warp owns R rows (R = 1, 2 or 4 by column count; gate and up rows both for SwiGLU);
// lane l handles the row's "units" l, l+32, l+64, ... (a unit is one to three 16-byte weight loads plus
// scales), several units loaded before any is used so that enough bytes are in flight, and keeps one
// fp32 partial per (row, column), added in unit order; a fixed xor butterfly reduces the lanes. Which
// units a lane owns and the order of every addition never depend on R or on the number of columns, so
// column c's result is bit-identical alone or in a batch of 16 (batch invariance).
//
// Four kernel families implement this split with the same addition order, so their results are
// bit-identical: the legacy kernel (matvec.cu) loads each lane's units straight into registers; the
// staged kernel (matvec_staged.cu) moves the weight bytes through a per-lane cp.async ring in shared
// memory; the streaming kernel (matvec_stream.cu) keeps that ring full across rows in a persistent
// grid (each warp walks many row groups); the fan-out kernel (matvec_fanout.cu, one column) has any
// thread compute any unit's dot into shared memory and adds them afterwards in the lane order (with
// an opt-in variant, measured slower: Q4_K's integer sums on int8 tensor cores). matvec() picks one
// per weight type and column count (measured defaults, see docs/performance.md); set_matvec_variant()
// overrides the choice for benchmarks and tests.
#pragma once

#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <cstdint>
#include <span>
#include <string>

#include "gpu/device_matrix.hpp"

namespace worker::gpu {

constexpr std::uint32_t k_matvec_max_cols = 16;

// Activations of one matvec: fp32 for float weights, int8 blocks for quantized weights. Either or
// both may be set; the kernel reads the one its weight type needs.
struct matvec_x {
  const float* f32 = nullptr;      // [ncols][ld_f32]
  std::uint32_t ld_f32 = 0;
  const std::int8_t* q8 = nullptr;     // q_hi [ncols][ld_q8] (ld_q8 a multiple of 16)
  const std::int8_t* q8_lo = nullptr;  // q_lo [ncols][ld_q8]
  std::uint32_t ld_q8 = 0;
  const float4* ds = nullptr;          // [ncols][ld_ds]: (d_hi, s_hi, d_lo, s_lo) of each 32-block
  std::uint32_t ld_ds = 0;
  std::uint32_t ncols = 0;         // 1..k_matvec_max_cols
  // q8 / q8_lo / ds in the superblock-minor layout (sb_minor_byte, sb_minor_block): one column, Q4_K
  // and Q6_K weights, the default one-column tuning only (matvec_accepts_sb_minor); else a typed error.
  bool sb_minor = false;
};

// The superblock-minor layout of one column of K int8 activations (K a multiple of 256, nsb = K/256
// super-blocks): the 16-byte chunk i (0..15) of super-block b at byte i·nsb·16 + b·16, the ds of
// 32-block j (0..7) of super-block b at j·nsb + b. The lanes of a one-column K-quant kernel take
// consecutive units of a row, i.e. the same chunk of consecutive super-blocks: in this layout 8 lanes
// share a 128-byte line of activations, in the standard one 2 (fewer L1 wavefronts; the values, and so
// the bits of every dot, are the same). H200 runs S14-8 / S14-9, Q4_K_M decode at batch 1: 494.9 vs
// 491.2 and 493.7, 498.2, 495.8 vs 492.9, 486.7, 488.3 tok/s in the standard layout (+0.8 … +2 %).
constexpr std::uint32_t sb_minor_byte(std::uint32_t e, std::uint32_t nsb) {
  return ((e >> 4) & 15u) * nsb * 16 + (e >> 8) * 16 + (e & 15u);
}
constexpr std::uint32_t sb_minor_block(std::uint32_t j, std::uint32_t nsb) { return (j & 7u) * nsb + (j >> 3); }

// One weight and where its outputs go: y[c·ldy + m] = (accumulate ? y[c·ldy + m] : 0) + bias[m] + Σ.
// Launched as programmatic dependents, the one-column Q8_0 / F16 fan-out kernels read the bias (model
// data, never written by a kernel) before waiting for their producer, and the residual too when
// residual_final says they may: set it only when no kernel that may still run — the launch before
// this one, or one before that which let its dependents start early — writes y (decode: wo and the
// FFN down projection add into h, which the attention and the SwiGLU quantization do not write).
struct matvec_out {
  device_matrix w;
  const float* bias = nullptr;  // [rows] or null
  float* y = nullptr;
  std::uint32_t ldy = 0;
  bool accumulate = false;  // residual add into y
  bool residual_final = false;  // with accumulate: y is final when the launch starts (see above)
};

// Up to 3 weights of the same type and column count sharing the same x, in one launch (Q, K, V).
void matvec(std::span<const matvec_out> outs, const matvec_x& x, cudaStream_t stream);

// y[c·ldy + m] = silu(gate·x)[m] · (up·x)[m]: both products and the SwiGLU in one launch.
void matvec_swiglu(const device_matrix& gate, const device_matrix& up, const matvec_x& x, float* y,
                   std::uint32_t ldy, cudaStream_t stream);

// Tuning switches of the matvec kernels, process-wide (for benchmarks and tests; not for concurrent use
// with launches): comma-separated tokens, e.g. "staged,s6,nopf" or "legacy,nopdl"; "" restores the
// measured defaults. The environment variable WORKER_ORCD_MATVEC_VARIANT gives the initial value.
// Every kernel family and variant computes bit-identical results (same per-lane addition order).
// Throws gpu_error(invalid_argument) for an unknown token.
void set_matvec_variant(const std::string& spec);

// Diagnostics: with the token ftrace, the fan-out kernel (default task shapes, evict_first loads) has
// thread 0 of each block write one record to records[blockIdx.x] (the caller sizes it to the launch's
// blocks; null switches recording off). Cycle counts are the SM's clock; times the global timer.
struct fan_trace_record {
  unsigned long long start_ns, end_ns;  // block start / end (thread 0)
  std::uint32_t smid;
  std::uint32_t pdl_cycles;      // start → past the wait for the producer of x (its first weights requested)
  std::uint32_t landed_cycles;   // → every weight piece of thread 0's first task in registers
  std::uint32_t dots_cycles;     // → thread 0's tasks done (its dots; later load rounds included)
  std::uint32_t barrier_cycles;  // → every thread of the block past the barrier before phase 2
  std::uint32_t phase2_cycles;   // → warp 0's phase 2 done (its rows summed and stored)
};
void set_matvec_trace(fan_trace_record* records);
// True when `type` takes int8 activations (matvec_x::q8/q8_lo/ds) rather than fp32.
bool matvec_uses_q8(model::ggml_type type);
// True when a one-column matvec of `type` under the current tuning reads matvec_x::sb_minor
// activations: Q4_K and Q6_K with the default fan-out task shapes (no family, task-shape, mma, trace,
// nowef or hionly token).
bool matvec_accepts_sb_minor(model::ggml_type type);

// x[c·ldx + k], k < K (a multiple of 32) → hi/lo[c·ld_q8 + k], ds[c·ld_ds + k/32] (q8_act.cuh).
// pdl: launch as a programmatic dependent (waits for its producer inside the kernel); early_trigger:
// let the next kernel launch before that wait (rmsnorm_args::early_trigger says why that is safe).
// sb_minor: one column in the superblock-minor layout (k a multiple of 256).
void quantize_q8(const float* x, std::uint32_t ldx, std::uint32_t k, std::uint32_t ncols, std::int8_t* hi,
                 std::int8_t* lo, std::uint32_t ld_q8, float4* ds, std::uint32_t ld_ds, cudaStream_t stream,
                 bool pdl = false, bool early_trigger = false, bool sb_minor = false);

}  // namespace worker::gpu
