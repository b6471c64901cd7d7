// Internal to the decode matvec (matvec.cu, matvec_staged.cu, matvec_stream.cu): launch parameters,
// tuning switches and the device helpers the kernel families share (row prefetch, cp.async, lane
// reduction, the output epilogue).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpu/gpu_error.hpp"
#include "gpu/launch.cuh"
#include "gpu/matvec.cuh"

namespace worker::gpu::mvk {

using model::ggml_type;

struct mv_seg {
  device_matrix w;
  const float* bias;
  float* y;
  std::uint32_t ldy;
  int accumulate;  // 0: y = bias + Σ; 1: y += bias + Σ; 2: the same, y final when the launch starts (matvec_out::residual_final)
  std::uint32_t block_begin;  // first grid block of this segment
};

struct mv_params {
  mv_seg seg[3];
  int nseg;
  int prefetch;  // bulk-prefetch each warp's weight rows into L2 before waiting on the producer (PDL): 0 no, 1 all, 2 head
  int early;     // legacy kernel: load the first batch of weights before waiting on the producer (0 / 1)
  int pre_bias;  // fan-out kernel: copy the bias to shared memory before the PDL wait (0 / 1)
  matvec_x x;
};

// Rows per warp: every activation load (two levels: 4× the weight bytes of a 4-bit row) is shared by
// the warp's R rows. Without that, L1 load wavefronts for the activations, not DRAM, limit the kernel
// (measured: ~1.2 TB/s with R = 1 on an H200). Q6_K's decoded unit is large, so it stops at 2.
// Single column: measured on an H200 (bench, Q4_K_M / Q8_0 / F16 files, variants r1u2 … r4u1): K-quants
// are best at R = 2 with 2 units in flight, the 32-element and float formats at R = 1 with 2. (The
// legacy and staged kernels; the streaming kernel's one-column choice is in matvec_stream.cu.)
template <ggml_type T, int NC>
constexpr int rows_per_warp() {
  constexpr bool kq = T == ggml_type::q4_k || T == ggml_type::q5_k || T == ggml_type::q6_k;
  if (NC == 1) return kq ? 2 : 1;
  return T == ggml_type::q6_k ? 2 : 4;
}
// Units each lane loads before using any (bytes in flight: R rows × units × 16 B per lane).
template <ggml_type T, int NC>
constexpr int units_in_flight() {
  return NC == 1 ? 2 : 1;
}

// Hopper bulk prefetch of `bytes` at `p` into L2 (a hint: no registers, no completion to wait for).
// Start rounded up and length down to 16 bytes, so it never touches bytes outside [p, p + bytes).
__device__ __forceinline__ void prefetch_l2(const void* p, std::size_t bytes) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t b = (a + 15) & ~std::uintptr_t{15}, e = (a + bytes) & ~std::uintptr_t{15};
  if (e <= b) return;
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(b), "r"(static_cast<std::uint32_t>(e - b)) : "memory");
}

// Prefetches the weight bytes of rows [row, row + n) (the large parts of each layout), at most `cap`
// bytes of each part (mv_params::prefetch 2: only the head, to cover the start of the warp's stream).
template <ggml_type T>
__device__ __forceinline__ void prefetch_rows(const device_matrix& w, std::uint32_t row, std::uint32_t n, std::size_t cap) {
  auto pf = [cap](const void* p, std::size_t bytes) { prefetch_l2(p, bytes < cap ? bytes : cap); };
  const std::size_t nb = w.cols / (T == ggml_type::q4_k || T == ggml_type::q5_k || T == ggml_type::q6_k ? 256 : 32);
  const std::size_t first = static_cast<std::size_t>(row) * nb, count = static_cast<std::size_t>(n) * nb;
  if constexpr (T == ggml_type::q4_k) pf(w.qs + first * 144, count * 144);
  else if constexpr (T == ggml_type::q5_k) pf(w.qs + first * 176, count * 176);
  else if constexpr (T == ggml_type::q6_k) {
    pf(w.qs + first * 192, count * 192);
    pf(w.aux + first * 16, count * 16);
  } else if constexpr (T == ggml_type::q8_0) pf(w.qs + first * 32, count * 32);
  else if constexpr (T == ggml_type::q4_0 || T == ggml_type::q5_0) pf(w.qs + first * 16, count * 16);
  else if constexpr (T == ggml_type::f32) pf(w.qs + static_cast<std::size_t>(row) * w.cols * 4, static_cast<std::size_t>(n) * w.cols * 4);
  else pf(w.qs + static_cast<std::size_t>(row) * w.cols * 2, static_cast<std::size_t>(n) * w.cols * 2);
}
// The cap for mv_params::prefetch (1: whole rows, 2: the first 4 KB).
__device__ __forceinline__ std::size_t prefetch_cap(int mode) { return mode == 2 ? 4096 : ~std::size_t{0}; }

__device__ __forceinline__ mv_seg pick(const mv_params& p, int s) {
  return s == 0 ? p.seg[0] : (s == 1 ? p.seg[1] : p.seg[2]);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The per-(row, column) fp32 partials of a warp: cleared, and summed over the lanes (fixed butterfly).
template <int RR, int NC>
__device__ __forceinline__ void clear(float (&acc)[RR][NC]) {
#pragma unroll
  for (int r = 0; r < RR; ++r)
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[r][c] = 0.0f;
}
template <int RR, int NC>
__device__ __forceinline__ void sum_lanes(float (&acc)[RR][NC]) {
#pragma unroll
  for (int r = 0; r < RR; ++r)
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[r][c] = warp_sum(acc[r][c]);
}

// silu(g) = g·σ(g), rounded like the CPU reference (cpu/ffn.cpp): g · (1 / (1 + e^-g)).
__device__ __forceinline__ float silu(float g) { return __fmul_rn(g, __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-g)))); }


// 16 bytes global → shared memory, asynchronously (L2 only: the weights are read once); completion is
// tracked per thread by commit groups.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const auto s = static_cast<std::uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most N of this thread's commit groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

__device__ __forceinline__ void pdl_wait_and_release() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
}

// A 4-byte asynchronous copy global → shared (cp.async; complete after cp.async.wait_all).
__device__ __forceinline__ void copy4_async(float* dst_shared, const float* src) {
  const auto dst = static_cast<std::uint32_t>(__cvta_generic_to_shared(dst_shared));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(dst), "l"(src) : "memory");
}

// Writes one result: y = silu(gate)·up for SWIGLU (sum = gate's, up = up's), otherwise
// y = (accumulate ? y : 0) + bias + sum. Every kernel family ends with this epilogue.
template <bool SWIGLU>
__device__ __forceinline__ void store_one(const mv_seg& sg, std::uint32_t row, std::uint32_t c, float sum, float up) {
  float* y = sg.y + static_cast<std::size_t>(c) * sg.ldy + row;
  if (SWIGLU) {
    *y = __fmul_rn(silu(sum), up);
  } else {
    float v = sum;
    if (sg.bias) v = __fadd_rn(v, sg.bias[row]);
    if (sg.accumulate) v = __fadd_rn(*y, v);
    *y = v;
  }
}

// store_one for one column (not SWIGLU) with the bias and / or the residual already at hand (a copy made
// before the PDL wait, fan-out kernel) where bias / residual are not null: the same operations.
__device__ __forceinline__ void store_one_from(const mv_seg& sg, std::uint32_t row, float sum, const float* bias,
                                               const float* residual) {
  float* y = sg.y + row;
  float v = sum;
  if (sg.bias) v = __fadd_rn(v, bias ? *bias : sg.bias[row]);
  if (sg.accumulate) v = __fadd_rn(residual ? *residual : *y, v);
  *y = v;
}

// Writes the warp's results: lane (r·NC + c) mod 32 writes row r of column c. SWIGLU: acc rows [0, R) are
// gate, [R, 2R) up.
template <int R, int NC, bool SWIGLU, int RR>
__device__ __forceinline__ void store_rows(const mv_seg& sg, std::uint32_t rows, std::uint32_t row0, std::uint32_t ncols,
                                           int lane, const float (&acc)[RR][NC]) {
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const std::uint32_t row = row0 + static_cast<std::uint32_t>(r);
      if (lane != ((r * NC + c) & 31) || row >= rows || c >= static_cast<int>(ncols)) continue;
      store_one<SWIGLU>(sg, row, static_cast<std::uint32_t>(c), acc[r][c], SWIGLU ? acc[(r + R) % RR][c] : 0.0f);
    }
}

// Process-wide tuning switches, parsed once from WORKER_ORCD_MATVEC_VARIANT (comma-separated tokens) or
// set by set_matvec_variant(): kernel family (legacy | staged | stream | fanout, or legacy@TYPE /
// staged@TYPE / stream@TYPE / fanout@TYPE for one weight type, e.g. legacy@q6_k; fanout only at one
// column, fsN: fan-out for launches of at most N·2^20 weights; fan-out rows per block fbN, rows per
// thread task ft1 ft2 ft4, units per task fu1 fu2 fu4, trimmed blocks ftrim / fwide; the same for
// long-row launches fdN fdt1 fdt2 fdt4 fdu1 fdu2 fdu4, for small launches fsbN fsr1 fsr2 fsr4 and for
// gate + up (SwiGLU) launches fgN fgt1 fgt2 fgt4;
// fmma / nomma: Q4_K on int8 tensor cores; fwef / nowef: weight loads L1::evict_first or not;
// nonarrow: Q4_K four-row tasks without the registers of five 128-thread blocks per SM; ftrace:
// block timelines; hionly: a measuring probe, not the product's numerics — the Q4_K, Q6_K and Q8_0
// dots on the high activation level alone), stream rows / depth / header sharing at one column (str1
// str2, sts2 sts3 sts4 sts6 sts8), staged pipeline depth (s2 s3 s4 s6 s8) and rows per warp at one
// column (r1 r2 with s4), legacy variants (r1u4 r1u2 r2u2 r2u4 r4u1), L2 prefetch (pf | pfhead | nopf), programmatic
// dependent launch (pdl | nopdl) and the fan-out bias copied before the PDL wait (prebias | noprebias; Q8_0 /
// F16 only, matvec_fanout.cu fan_copies_epilogue_inputs). -1: the measured per-type default.
struct mv_tuning {
  int family = -1;          // 0 legacy, 1 staged, 2 stream, 3 fanout
  int family_of[32] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                       -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};  // per ggml type: legacy@q6_k
  int stages = 0;           // staged, one column: 0 default
  int rows = 0;             // staged, one column: 0 default
  int legacy_variant = 0;   // 1..5 as listed above, 0 default
  int prefetch = -1;        // 0 / 1 / 2 (pfhead: the first 4 KB of each warp's rows)
  int pdl = -1;             // 0 / 1
  int stream_rows = 0;      // stream, one column: rows per warp (str1 str2), 0 default
  int stream_stages = 0;    // stream, one column: pipeline depth (sts2 sts3 sts4 sts6 sts8), 0 default
  int early = -1;           // legacy: first weights before the PDL wait (early | late), -1 default (early)
  int fanout_rows = 0;      // fan-out: rows per block (fb2 … fb64), 0 default (sized to the matrix)
  int fanout_task_rows = 0; // fan-out: rows per thread task (ft1 ft2 ft4; ft4 with one unit), 0 default
  int fanout_task_units = 0; // fan-out: consecutive units per thread task (fu1 fu2 fu4), 0 default
  int fanout_trim = -1;      // fan-out: one-round blocks with only the warps their tasks need (ftrim 1, fwide 0), -1 default
  int fanout_long_rows = 0;        // fan-out: rows per block of launches with long rows (fdN; K ≥ k_fan_long_k), 0 default
  int fanout_long_task_rows = 0;   // fan-out: rows per task there (fdt1 fdt2 fdt4), 0 default
  int fanout_long_task_units = 0;  // fan-out: consecutive units per task there (fdu1 fdu2 fdu4), 0 default
  int fanout_small_rows = 0;       // fan-out: rows per block of small launches (fsbN; ≤ k_fan_small_weights), 0 default
  int fanout_small_task_rows = 0;  // fan-out: rows per task there (fsr1 fsr2 fsr4), 0 default
  int fanout_swiglu_rows = 0;      // fan-out: output rows per block of gate + up launches (fgN), 0 default
  int fanout_swiglu_task_rows = 0; // fan-out: rows per task there (fgt1 fgt2 fgt4), 0 default
  int fanout_mma = -1;             // fan-out, Q4_K: the int8 tensor-core kernel (fmma 1, nomma 0), -1 default
  int fanout_trace = 0;            // fan-out: block timelines to set_matvec_trace's array (ftrace), 0 off
  int fanout_narrow = -1;          // fan-out, Q4_K four-row tasks in blocks ≤ 128 threads: registers of 5 blocks per SM (nonarrow 0), -1 default (on)
  int fanout_pre_bias = -1;        // fan-out: the bias copied before the PDL wait (noprebias 0), -1 default (on)
  int fanout_evict_first = -1;     // fan-out register kernel, default task shapes: weights loaded L1::evict_first (fwef 1, nowef 0), -1 default (on)
  // Measuring probe (hionly): the fan-out Q4_K / Q6_K / Q8_0 dots on the high activation level alone
  // (single-level int8 activations, as llama.cpp's q8_1), to price the second level. Not the product's
  // numerics: on the full-size Q4_K_M file the greedy continuation leaves the CPU reference's at a
  // decisive step (H200 run S14-3, docs/performance.md).
  int hi_only = 0;
  int fanout_below = -1;    // fan-out for launches of at most N·2^20 weights (fsN), the rest by default; -1 unset
};
const mv_tuning& tuning();

// Grid launch with or without the programmatic-stream-serialization attribute.
template <typename K>
void launch_kernel(K kernel, std::uint32_t blocks, std::uint32_t threads, bool pdl, const mv_params& p, cudaStream_t stream) {
  launch_maybe_pdl(kernel, dim3(blocks), dim3(threads), pdl, stream, p);
}

// Explicit instantiations of a kernel family's launcher `RET FN<T, SWIGLU>(mv_params&, bool, cudaStream_t)`
// for every weight type the matvec kernels implement, with and without SwiGLU.
#define WORKER_MATVEC_LAUNCHER_OF(RET, FN, T)                      \
  template RET FN<T, false>(mv_params&, bool, cudaStream_t);       \
  template RET FN<T, true>(mv_params&, bool, cudaStream_t);
#define WORKER_MATVEC_LAUNCHERS(RET, FN)                                                                      \
  WORKER_MATVEC_LAUNCHER_OF(RET, FN, ggml_type::q4_k) WORKER_MATVEC_LAUNCHER_OF(RET, FN, ggml_type::q5_k)      \
  WORKER_MATVEC_LAUNCHER_OF(RET, FN, ggml_type::q6_k) WORKER_MATVEC_LAUNCHER_OF(RET, FN, ggml_type::q8_0)      \
  WORKER_MATVEC_LAUNCHER_OF(RET, FN, ggml_type::q4_0) WORKER_MATVEC_LAUNCHER_OF(RET, FN, ggml_type::q5_0)      \
  WORKER_MATVEC_LAUNCHER_OF(RET, FN, ggml_type::f16) WORKER_MATVEC_LAUNCHER_OF(RET, FN, ggml_type::bf16)       \
  WORKER_MATVEC_LAUNCHER_OF(RET, FN, ggml_type::f32)

// The staged (cp.async) kernel family for type T (matvec_staged.cu).
template <ggml_type T, bool SWIGLU>
void launch_staged(mv_params& p, bool pdl, cudaStream_t stream);

// The streaming (persistent, cp.async across rows) kernel family for type T (matvec_stream.cu), for
// 1..4 columns; false when it does not handle this column count (the caller falls back).
template <ggml_type T, bool SWIGLU>
bool launch_stream(mv_params& p, bool pdl, cudaStream_t stream);

// The fan-out kernel family for type T (matvec_fanout.cu), one column only; false for more columns
// (the caller falls back).
template <ggml_type T, bool SWIGLU>
bool launch_fanout(mv_params& p, bool pdl, cudaStream_t stream);
// Whether the fan-out launches of `type` read superblock-minor activations under the current tuning
// (four-row one-unit tasks in every row class, no flag that has no such instantiation): matvec.cu's
// matvec_accepts_sb_minor adds the family choice.
bool fanout_reads_sb_minor(model::ggml_type type);
// set_matvec_trace's array for the fan-out kernel (matvec_fanout.cu).
void set_fan_trace(fan_trace_record* records);

}  // namespace worker::gpu::mvk
