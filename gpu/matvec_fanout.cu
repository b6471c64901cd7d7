// The fan-out decode matvec kernel family (one column; the math and the work split are in matvec.cuh):
// the same unit dots and the same addition order as the legacy, staged and streaming kernels, so the
// results are bit-identical, but the dots of a row are not computed by the warp that adds them.
//
// In the other families lane l of one warp computes, one after another, the dots of units l, l+32, …
// of its R rows: a serial chain of loads, decode and arithmetic per lane, with the bytes in flight
// bounded by a register or shared-memory ring per warp (~15 warps per SM for the K-quants; ncu, H100
// session 5 run S5-2: 0.36–0.41 issued instructions per cycle and scheduler).
//
// Here a block owns BR rows. Phase 1: every thread takes independent tasks — UT consecutive units of RT
// rows, all their weight pieces requested before any is used, the activations of a unit loaded once for
// the RT rows — and writes each unit's dot (unit<T>::dot, the function every family uses) to shared
// memory. Phase 2: warp w adds row r's dots the way lane l of the other families does — 0, then units
// l, l+32, … in order — and reduces the lanes with the same butterfly. The float operations and their
// order are the same, so are the bits; only who computes a dot and when changes.
//
// Measured (H100, session 6): faster than the other families at one column for F16 (+3–4 %) and Q8_0
// (+4 %), from the large matrices (with the fan-out for the small ones only, Q8_0 and Q4_K_M did not
// move); for Q4_K_M +1–2 % with four rows per task in trimmed blocks (−4 … −7 % with two rows), +6 %
// with 16-row blocks for the down projection as well (session 7).
//
// Also here, opt-in and measured slower (bit-identical, tested): Q4_K on int8 tensor cores (fmma,
// rewritten in session 17), see its section for the numbers. (A persistent grid that streamed row
// groups through a shared-memory ring by bulk copies, fring, was slower in every shape on the H200 in session 8 — Q4_K_M 391 vs 414
// tok/s, Q8_0 305 vs 385, F16 228 vs 242 — and was removed in session 10; a per-thread cp.async
// double buffer for the long-row rounds, fdpipe, lost 7 / 14 / 4 % in session 13 (4 / 3 % with the
// copies through L1) and was removed; in session 14 one down-projection block per resident slot,
// fdbal, and the next task's loads a half task at a time, fdhalf, did not beat the default and were
// removed; docs/performance.md.)
#include <algorithm>

#include "gpu/block_trace.cuh"
#include "gpu/gpu_error.hpp"
#include "gpu/matvec_common.cuh"
#include "gpu/matvec_units.cuh"

namespace worker::gpu::mvk {

namespace {

constexpr int k_fan_threads = 256;  // at most: blocks whose tasks fit in one round get as many as their tasks (ftrim)
constexpr int k_fan_blocks_per_sm = 3;  // blocks per SM the register budget is set for (fan_min_blocks)
constexpr std::size_t k_fan_max_smem = 48 * 1024;  // static limit without the opt-in attribute

struct fan_geometry {
  std::uint32_t block_rows;  // BR: output rows of a block
  std::uint32_t nunits;      // units per row
  std::uint32_t tasks;       // per block: (SWIGLU ? 2 : 1)·BR / RT · ⌈nunits / UT⌉
  // Register kernel only: ⌈2^32 / G⌉ for G = ⌈nunits / UT⌉ unit groups per row (t / G = umulhi(t, magic)
  // for every task index t of the block, G ≥ 2); 0 when G = 1.
  std::uint32_t group_magic = 0;
};

// 16 weight bytes, with L1 eviction priority evict_first when EVICT_FIRST (the default for the default
// task shapes; token nowef: off): the weights are read once; the activations, read by every block, are
// what should stay in L1. Measured (H200 run S10-1, same binary, batch 1): Q4_K_M 446.9 vs 439.4 /
// 441.2 tok/s, Q8_0 407.3 / 406.1 vs 397.8 / 396.2, F16 254.0 / 254.1 vs 249.8 / 249.6 (+1.5, +2.5,
// +1.7 %). L1::no_allocate lost (S9-11: 404.9 / 378.9 / 252.5 against ~441 / ~397 / ~249): the two
// 16-byte halves of a sector, loaded by two instructions, no longer merge in L1.
template <bool EVICT_FIRST>
__device__ __forceinline__ uint4 ld16_weights(const void* p) {
  if constexpr (EVICT_FIRST) {
    uint4 v;
    asm("ld.global.nc.L1::evict_first.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
    return v;
  } else {
    return blocks::ld16(p);
  }
}

// Local row lr of a block: gate rows [0, BR), then (SWIGLU) up rows [BR, 2·BR), of output rows row0 + lr mod BR.
// (By value: a reference that may name either a kernel parameter or a local puts the local on the stack.)
template <bool SWIGLU>
__device__ __forceinline__ device_matrix local_matrix(const mv_params& p, const mv_seg& sg, std::uint32_t lr,
                                                      std::uint32_t br) {
  return SWIGLU && lr >= br ? p.seg[1].w : sg.w;
}

// Output row (block-local) of local row lr < (SWIGLU ? 2 : 1)·br: lr mod br without a division.
template <bool SWIGLU>
__device__ __forceinline__ std::uint32_t row_of(std::uint32_t lr, std::uint32_t br) {
  return SWIGLU && lr >= br ? lr - br : lr;
}

// The segment (Q, K or V weight of one launch) block blockIdx.x works on.
template <bool SWIGLU>
__device__ __forceinline__ int block_segment(const mv_params& p) {
  int s = 0;
  if (!SWIGLU) {
    if (p.nseg > 1 && blockIdx.x >= p.seg[1].block_begin) s = 1;
    if (p.nseg > 2 && blockIdx.x >= p.seg[2].block_begin) s = 2;
  }
  return s;
}

// Phase 2, after the block's dots[local row][unit] are complete: row r's sum in the order of every
// family — lane l adds 0, then units l, l+32, … — and the butterfly; then the output epilogue. A warp
// sums two rows at once (SwiGLU: gate and up of one output row; otherwise rows r and r + warps): two
// independent chains in one loop and one butterfly, each value with the operations and order of
// warp_sum, so the bits are unchanged while the block's last phase is about half as long. A block holds
// its registers until its last warp is done, so this phase's latency is what costs (H200 session 9):
// two rows at once (with the task split of matvec_fanout_kernel) took Q4_K_M from 420.2 / 421.6 to
// 441.9 / 440.0 tok/s, Q8_0 +1.3 %, F16 +1.1 % (run S9-4), while one thread per row (fewer
// instructions, a longer serial walk) lost 9 % for Q4_K_M (S9-3).
// PRE (not SWIGLU): the epilogue's other inputs were copied to shared memory before the PDL wait — the
// bias at pre[r] when pre_bias, the residual at pre[br + r] when pre_res (local row r).
template <bool SWIGLU, bool PRE = false>
__device__ __forceinline__ void add_and_store_rows(const mv_seg& sg, const float* dots, std::uint32_t br,
                                                   std::uint32_t nunits, std::uint32_t row0, const float* pre = nullptr,
                                                   bool pre_bias = false, bool pre_res = false) {
  const int lane = threadIdx.x & 31;
  const std::uint32_t nwarps = blockDim.x >> 5, rows = sg.w.rows;
  auto row_sums = [&](std::uint32_t la, std::uint32_t lb, float& a, float& b) {
    a = 0.0f;
    b = 0.0f;
    for (std::uint32_t u = static_cast<std::uint32_t>(lane); u < nunits; u += 32) {
      a = __fadd_rn(a, dots[la * nunits + u]);
      b = __fadd_rn(b, dots[lb * nunits + u]);
    }
    for (int o = 16; o > 0; o >>= 1) {
      const float ao = __shfl_xor_sync(0xffffffffu, a, o), bo = __shfl_xor_sync(0xffffffffu, b, o);
      a = __fadd_rn(a, ao);
      b = __fadd_rn(b, bo);
    }
  };
  const std::uint32_t step = SWIGLU ? nwarps : 2 * nwarps;
  for (std::uint32_t r = threadIdx.x >> 5; r < br && row0 + r < rows; r += step) {
    const std::uint32_t r2 = r + nwarps;
    const bool second = !SWIGLU && r2 < br && row0 + r2 < rows;
    float a, b;
    row_sums(r, SWIGLU ? br + r : second ? r2 : r, a, b);
    if (lane == 0) {
      if constexpr (PRE && !SWIGLU) {
        store_one_from(sg, row0 + r, a, pre_bias ? pre + r : nullptr, pre_res ? pre + br + r : nullptr);
        if (second) store_one_from(sg, row0 + r2, b, pre_bias ? pre + r2 : nullptr, pre_res ? pre + br + r2 : nullptr);
      } else {
        store_one<SWIGLU>(sg, row0 + r, 0, a, SWIGLU ? b : 0.0f);
        if (second) store_one<false>(sg, row0 + r2, 0, b, 0.0f);
      }
    }
  }
}

// Register budget: 85 per thread (3 blocks per SM) for tasks of up to two units, 128 (2 blocks) for
// larger ones, whose pieces in flight would otherwise spill.
template <int RT, int UT>
constexpr int fan_min_blocks() {
  return RT * UT >= 4 ? 2 : k_fan_blocks_per_sm;
}

// Block timelines (token ftrace, diagnostics): set_matvec_trace's array.
__device__ fan_trace_record* g_fan_trace = nullptr;
__device__ __forceinline__ std::uint64_t trace_clock() {
  std::uint64_t c;
  asm volatile("mov.u64 %0, %%clock64;" : "=l"(c));
  return c;
}
__device__ __forceinline__ std::uint64_t trace_ns() {
  std::uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
// Stalls until v's load has landed (an instruction that reads the register), in program order with
// the clock reads around it.
__device__ __forceinline__ void trace_wait_for(std::uint32_t v) {
  asm volatile("{ .reg .b32 t; mov.b32 t, %0; }" ::"r"(v));
}

// NARROW (the default for Q4_K four-row tasks in blocks of ≤ 128 threads, i.e. all Q4_K launches but
// the long-row ones; token nonarrow switches it off): the registers of five blocks per SM (96 a thread
// instead of 128: 20 warps per SM instead of 16), the dots by unit<q4_k>::dot_rows (one sub-block's
// activations live at a time; the same sums, the same bits). Block timelines (gpu_matvec_test
// "[.trace]", H200 runs S10-5/6) showed a Q4_K gate + up block spending ~85 % of its ~2.9 µs in its
// dots and phase 2, each warp latency-bound: more warps per SM hide more of it. Measured (H200): Q4_K_M
// 464.4 / 463.2 tok/s vs 445.5 / 444.5 without (S10-6; gate + up 24.1 vs 27.4 µs a launch), 461.3 vs
// 446.9 (S10-7); six blocks per SM (80 registers, spills) 419.8 / 420.1 (S10-6). Q6_K the same way
// (a group of activations at a time; 96 registers with 48 bytes of spills for plain launches: the
// output projection, V) was 0.5–1.5 % slower than Q6_K on the 128-register kernel (S10-7, S10-8:
// 461.3 / 465.4 / 466.4 / 465.8 vs 468.3 / 468.4 / 470.2 / 466.4) and was removed. (In run S10-1,
// with the down projection's long rows squeezed into 128-thread blocks too, narrow lost: 372.5.)
constexpr int k_fan_narrow_threads = 128;
constexpr int k_fan_narrow_blocks = 5;
template <int RT, int UT, int NARROW>
constexpr int fan_blocks_bound() {
  return NARROW ? NARROW : fan_min_blocks<RT, UT>();
}

// HI_ONLY: single-level activations (a measuring probe, token hionly; matvec_units.cuh load_x16).
// XPERM: Q4_K / Q6_K activations in the superblock-minor layout (matvec_x::sb_minor).
// PRE (not SWIGLU; Q8_0 and F16, fan_copies_epilogue_inputs): the bias and, where the launch says it is final
// (mv_seg::accumulate 2), the residual are copied to shared memory (cp.async) before the PDL wait, so
// that the last block's last rows do not wait for an L2 round trip after their sums. The same additions:
// the same bits.
template <ggml_type T, bool SWIGLU, int RT, int UT, bool EVICT_FIRST = false, bool TRACE = false, int NARROW = 0,
          bool HI_ONLY = false, bool XPERM = false, bool PRE = false>
__global__ void __launch_bounds__((NARROW ? k_fan_narrow_threads : k_fan_threads), (fan_blocks_bound<RT, UT, NARROW>()))
    matvec_fanout_kernel(const mv_params p, const fan_geometry g) {
  using U = mv::unit<T>;
  constexpr int NP = U::pieces;
  extern __shared__ float dots[];  // [local row][unit]
  block_tracer bt;
  bt.begin();

  const mv_seg sg = pick(p, block_segment<SWIGLU>(p));
  const std::uint32_t br = g.block_rows, nunits = g.nunits, rows = sg.w.rows;
  const std::uint32_t ngroups = (nunits + UT - 1) / UT;  // unit groups of a row
  const std::uint32_t row0 = (blockIdx.x - sg.block_begin) * br;

  // A task: units UT·j … UT·j + UT − 1 of local rows RT·q … RT·q + RT − 1, all their weight pieces
  // requested before any is used (bytes in flight per thread); the activations of a unit serve the RT rows.
  // t = q·G + j, split once per task by a multiply-high (no integer division: ~20 instructions each,
  // twice per task before).
  struct task_t {
    std::uint32_t q, u0;
  };
  auto split = [&](std::uint32_t t) {
    const std::uint32_t q = g.group_magic ? __umulhi(t, g.group_magic) : t;
    return task_t{q, (t - q * ngroups) * UT};
  };
  struct raw_t {
    uint4 pc[UT][RT][NP];
    typename U::small_t sm[UT][RT];
  };
  auto load = [&](task_t tk, raw_t& raw) {
    // The RT rows of a task lie in one local matrix (the launcher makes BR a multiple of RT): pick it once.
    const std::uint32_t lr0 = tk.q * RT;
    const bool up = SWIGLU && lr0 >= br;
    const device_matrix w = up ? p.seg[1].w : sg.w;
    const std::uint32_t r0 = row0 + (up ? lr0 - br : lr0);
    // The pieces' addresses are computed for the task's first row only; the other rows are 32-bit
    // offsets from it (row_bytes apart), which saves the 64-bit address arithmetic of RT − 1 rows
    // (SASS of the Q4_K gate + up kernel: ~70 of its ~540 instructions a task went to addresses).
    const std::uint32_t first = min(r0, rows - 1), stride = mv::row_bytes<U>(w);
#pragma unroll
    for (int c = 0; c < UT; ++c) {
      const std::uint32_t u = min(tk.u0 + static_cast<std::uint32_t>(c), nunits - 1);  // clamp: result unused
      const void* base[NP];
      U::ptrs(w, first, u, base);
#pragma unroll
      for (int i = 0; i < RT; ++i) {
        const std::uint32_t row = min(r0 + static_cast<std::uint32_t>(i), rows - 1);  // clamp: result unused
        const std::uint32_t off = (row - first) * stride;
#pragma unroll
        for (int k = 0; k < NP; ++k) raw.pc[c][i][k] = ld16_weights<EVICT_FIRST>(static_cast<const char*>(base[k]) + off);
        raw.sm[c][i] = U::small(w, row, u);
      }
    }
  };
  auto compute = [&](task_t tk, const raw_t& raw) {
    float* out = dots + tk.q * RT * nunits;
#pragma unroll
    for (int c = 0; c < UT; ++c) {
      const std::uint32_t u = tk.u0 + static_cast<std::uint32_t>(c);
      if (UT > 1 && u >= nunits) break;
      if constexpr (T == ggml_type::q4_k && (NARROW > 0 || HI_ONLY || XPERM)) {
        float d[RT];
        U::template dot_rows<RT, HI_ONLY, XPERM>(p.x, 0, u, raw.pc[c], d, nunits / 4);
#pragma unroll
        for (int i = 0; i < RT; ++i) out[i * nunits + u] = d[i];
        continue;
      }
      if constexpr (T == ggml_type::q6_k) {
        // A group of activations at a time (with the −32 applied once per group, not per row).
        float d[RT];
        U::template dot_rows<RT, HI_ONLY, XPERM>(p.x, 0, u, raw.pc[c], raw.sm[c], d, nunits / 4);
#pragma unroll
        for (int i = 0; i < RT; ++i) out[i * nunits + u] = d[i];
        continue;
      }
      typename U::x_t xv;
      if constexpr (T == ggml_type::q8_0) U::template load_x<HI_ONLY>(p.x, 0, u, xv);
      else U::load_x(p.x, 0, u, xv);
#pragma unroll
      for (int i = 0; i < RT; ++i) {
        typename U::w_t w;
        U::decode(raw.pc[c][i], raw.sm[c][i], u, w);
        if constexpr (T == ggml_type::q8_0) out[i * nunits + u] = U::template dot<HI_ONLY>(w, xv);
        else out[i * nunits + u] = U::dot(w, xv);
      }
    }
  };

  // Weights never depend on the producer of x and y (programmatic dependent launch): the first task's
  // pieces are requested before the wait.
  std::uint64_t trace[6] = {};  // TRACE, thread 0: start, PDL wait, landed, dots, barrier (clock); start (ns)
  if constexpr (TRACE) {
    if (threadIdx.x == 0) {
      trace[5] = trace_ns();
      trace[0] = trace_clock();
    }
  }
  std::uint32_t t = threadIdx.x;
  task_t tk = split(t);
  raw_t raw;
  if (t < g.tasks) load(tk, raw);
  // PRE: the epilogue's bias and residual to shared memory (after the dots), requested before the wait.
  float* const pre = dots + br * nunits;
  const bool pre_bias = PRE && sg.bias != nullptr && p.pre_bias, pre_res = PRE && sg.accumulate == 2;
  if constexpr (PRE) {
    if (pre_bias || pre_res) {
      for (std::uint32_t r = threadIdx.x; r < br; r += blockDim.x) {
        const std::uint32_t row = min(row0 + r, rows - 1);  // clamp: rows past the matrix are not stored
        if (pre_bias) copy4_async(pre + r, sg.bias + row);
        if (pre_res) copy4_async(pre + br + r, sg.y + row);
      }
    }
  }
  bt.claim();
  pdl_wait_and_release();
  bt.waited();
  if constexpr (TRACE) {
    if (threadIdx.x == 0) trace[1] = trace_clock();
    if (threadIdx.x == 0 && t < g.tasks) {
#pragma unroll
      for (int c = 0; c < UT; ++c)
#pragma unroll
        for (int i = 0; i < RT; ++i)
#pragma unroll
          for (int k = 0; k < NP; ++k) trace_wait_for(raw.pc[c][i][k].x);
    }
    if (threadIdx.x == 0) trace[2] = trace_clock();
  }
  while (t < g.tasks) {
    compute(tk, raw);
    t += blockDim.x;
    tk = split(t);
    if (t < g.tasks) load(tk, raw);
  }
  if constexpr (TRACE) trace[3] = trace_clock();
  if constexpr (PRE) asm volatile("cp.async.wait_all;" ::: "memory");  // the epilogue inputs (the barrier shares them)
  __syncthreads();
  if constexpr (TRACE) trace[4] = trace_clock();
  add_and_store_rows<SWIGLU, PRE>(sg, dots, br, nunits, row0, pre, pre_bias, pre_res);
  bt.end(traced_kernel::matvec_fanout);
  if constexpr (TRACE) {
    if (threadIdx.x == 0 && g_fan_trace) {
      const std::uint64_t end = trace_clock();
      std::uint32_t smid;
      asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
      fan_trace_record r;
      r.start_ns = trace[5];
      r.end_ns = trace_ns();
      r.smid = smid;
      r.pdl_cycles = static_cast<std::uint32_t>(trace[1] - trace[0]);
      r.landed_cycles = static_cast<std::uint32_t>(trace[2] - trace[1]);
      r.dots_cycles = static_cast<std::uint32_t>(trace[3] - trace[2]);
      r.barrier_cycles = static_cast<std::uint32_t>(trace[4] - trace[3]);
      r.phase2_cycles = static_cast<std::uint32_t>(end - trace[4]);
      g_fan_trace[blockIdx.x] = r;
    }
  }
}

// The instantiation of matvec_fanout_kernel a launch of task shape RT × UT takes: the one place that
// maps the tuning tokens and x.sb_minor to the kernel's template flags (fanout_reads_sb_minor below
// states which tunings admit superblock-minor activations). Only the default task shapes (one unit,
// two or four rows) have the optional flags: evict-first weight loads (default; nowef off), block
// timelines (ftrace, with evict-first loads), narrow blocks (Q4_K four-row tasks in blocks of ≤ 128
// threads with evict-first loads; nonarrow off), single-level activations (hionly, Q4_K / Q6_K / Q8_0
// with evict-first loads, not with ftrace) and superblock-minor activations (Q4_K / Q6_K four-row tasks).
// The one flag decided elsewhere: pre (epilogue inputs copied before the wait), by
// fan_copies_epilogue_inputs, because the block's shared memory depends on it before the thread
// count that fan_flags_for needs is known.
struct fan_flags {
  bool evict_first = false, trace = false, narrow = false, hi_only = false, xperm = false, pre = false;
};
// Whether a one-column launch copies its epilogue inputs before the PDL wait (the kernel's PRE): the
// default Q8_0 / F16 shapes with evict-first loads, not SWIGLU. Measured (H200 run S20-5, batch 1, same
// binary): Q8_0 426.5 / 426.1 tok/s against 418.8 / 420.2 without either copy (the residual's copy
// alone +1.0 %, the bias's +0.7 %; tokens noresfinal (engine) and noprebias). In the K-quant kernels
// the same code cost ~2 % (Q4_K_M, S20-4 / S20-5: even with the copies switched off at run time), so
// they are built without it.
template <ggml_type T, bool SWIGLU, int RT, int UT>
bool fan_copies_epilogue_inputs(const mv_tuning& t, bool sb_minor) {
  constexpr bool shape = !SWIGLU && UT == 1 && (RT == 4 || RT == 2) && (T == ggml_type::q8_0 || T == ggml_type::f16);
  return shape && !sb_minor && t.fanout_trace != 1 && t.fanout_evict_first != 0 && t.hi_only != 1;
}
template <ggml_type T, int RT, int UT>
fan_flags fan_flags_for(const mv_tuning& t, std::uint32_t threads, bool sb_minor) {
  constexpr bool default_shape = UT == 1 && (RT == 4 || RT == 2);
  constexpr bool k_quant_rows4 = UT == 1 && RT == 4 && (T == ggml_type::q4_k || T == ggml_type::q6_k);
  constexpr bool has_hi_only = T == ggml_type::q4_k || T == ggml_type::q6_k || T == ggml_type::q8_0;
  fan_flags f;
  if (sb_minor) {
    if (!k_quant_rows4)
      throw gpu_error(gpu_error_code::invalid_argument, "matvec: superblock-minor activations outside the default Q4_K/Q6_K fan-out shape");
    f.evict_first = f.xperm = true;
  } else if (default_shape) {
    f.trace = t.fanout_trace == 1;
    f.evict_first = t.fanout_evict_first != 0 || f.trace;
    f.hi_only = has_hi_only && t.hi_only == 1 && t.fanout_evict_first != 0 && !f.trace;
  }
  f.narrow = RT == 4 && UT == 1 && T == ggml_type::q4_k && t.fanout_narrow != 0 && t.fanout_evict_first != 0 &&
             threads <= static_cast<std::uint32_t>(k_fan_narrow_threads);
  return f;
}
using fan_kernel_t = void (*)(mv_params, fan_geometry);
template <ggml_type T, bool SWIGLU, int RT, int UT>
fan_kernel_t fan_kernel(const fan_flags& f) {
  if constexpr (UT == 1 && (RT == 4 || RT == 2)) {
    constexpr int N = k_fan_narrow_blocks;
    constexpr bool narrow_ok = RT == 4 && T == ggml_type::q4_k;
    if constexpr (RT == 4 && (T == ggml_type::q4_k || T == ggml_type::q6_k)) {
      if (f.xperm) {
        if constexpr (narrow_ok) {
          if (f.narrow) return matvec_fanout_kernel<T, SWIGLU, RT, UT, true, false, N, false, true>;
        }
        return matvec_fanout_kernel<T, SWIGLU, RT, UT, true, false, 0, false, true>;
      }
    }
    if constexpr (T == ggml_type::q4_k || T == ggml_type::q6_k || T == ggml_type::q8_0) {
      if (f.hi_only) {
        if constexpr (narrow_ok) {
          if (f.narrow) return matvec_fanout_kernel<T, SWIGLU, RT, UT, true, false, N, true>;
        }
        return matvec_fanout_kernel<T, SWIGLU, RT, UT, true, false, 0, true>;
      }
    }
    if (f.trace) {
      if constexpr (narrow_ok) {
        if (f.narrow) return matvec_fanout_kernel<T, SWIGLU, RT, UT, true, true, N>;
      }
      return matvec_fanout_kernel<T, SWIGLU, RT, UT, true, true>;
    }
    if (f.evict_first) {
      if constexpr (narrow_ok) {
        if (f.narrow) return matvec_fanout_kernel<T, SWIGLU, RT, UT, true, false, N>;
      }
      if constexpr (!SWIGLU && (T == ggml_type::q8_0 || T == ggml_type::f16)) {
        if (f.pre) return matvec_fanout_kernel<T, SWIGLU, RT, UT, true, false, 0, false, false, true>;
      }
      return matvec_fanout_kernel<T, SWIGLU, RT, UT, true>;
    }
  }
  return matvec_fanout_kernel<T, SWIGLU, RT, UT>;
}

// The block shape of a fan-out launch: rows per block (block_rows rounded down to a multiple of `step`,
// at least `step`, lowered until the block's shared memory, smem_of(rows), is at most `limit`; 0 when
// not even `step` rows fit), its shared-memory bytes and the grid size; sets the segments' first
// blocks in p.
struct fan_blocks {
  std::uint32_t rows = 0, blocks = 0;
  std::size_t smem = 0;
};
template <bool SWIGLU, typename SmemOf>
fan_blocks plan_blocks(mv_params& p, int block_rows, std::uint32_t step, std::size_t limit, SmemOf smem_of) {
  std::uint32_t br = std::max(static_cast<std::uint32_t>(block_rows) / step * step, step);
  while (br > step && smem_of(br) > limit) br -= step;
  if (smem_of(br) > limit) return {};
  fan_blocks f{br, 0, smem_of(br)};
  const int nseg = SWIGLU ? 1 : p.nseg;
  for (int s = 0; s < nseg; ++s) {
    p.seg[s].block_begin = f.blocks;
    f.blocks += (p.seg[s].w.rows + br - 1) / br;
  }
  if (SWIGLU) p.seg[1].block_begin = 0;
  return f;
}
// The dots of a block: (SWIGLU ? 2 : 1)·rows·nunits floats, then (pre: the kernel's PRE) 2·rows floats
// of epilogue inputs (bias, residual).
template <bool SWIGLU>
fan_blocks plan_dot_blocks(mv_params& p, std::uint32_t nunits, int block_rows, std::uint32_t step, bool pre = false) {
  return plan_blocks<SWIGLU>(p, block_rows, step, k_fan_max_smem, [&](std::uint32_t br) {
    return static_cast<std::size_t>(br) * ((SWIGLU ? 2 : 1) * nunits + (pre ? 2 : 0)) * sizeof(float);
  });
}

// The K-quant fan-out kernels prefer 25 % of the SM's L1 / shared memory as shared memory (enough for
// their dots at the blocks per SM their registers allow: at most 2 × 19 KB, the 16-row down blocks),
// leaving the rest to L1, where every block re-reads the activations. H200 run S21-7, Q4_K_M batch 1:
// 521.4 tok/s against 513.9 / 511.7 with the driver's choice, prefill unchanged (20,248 against
// 20,081 / 20,092); 25 % for every kernel gained more at batch 1 (521.4 … 526.1 in S21-2, S21-6, S21-7)
// but cost prefill 10 % (the prefill attention's blocks then fit fewer to an SM). Q8_0 and F16 keep the
// driver's choice (25 % for every kernel: Q8_0 −1 %, F16 −16 %: F16's down blocks hold 38 KB of dots).
// Measuring switch: WORKER_ORCD_SMEM_CARVEOUT (gpu/launch.cuh; driver: no preference anywhere).
constexpr int k_kquant_fan_carveout = 25;

// block_rows rows per block (a multiple of RT, lowered until a block's dots fit in shared memory);
// false when not even RT rows fit (a very long row: the caller falls back to another family).
template <ggml_type T, bool SWIGLU, int RT, int UT>
bool launch_rt(mv_params& p, bool pdl, cudaStream_t stream, int block_rows, bool trim) {
  const std::uint32_t nunits = mv::unit<T>::count(p.seg[0].w.cols);
  const bool pre = fan_copies_epilogue_inputs<T, SWIGLU, RT, UT>(tuning(), p.x.sb_minor);
  const fan_blocks f = plan_dot_blocks<SWIGLU>(p, nunits, block_rows, RT, pre);
  if (f.rows == 0) return false;
  const std::uint32_t ngroups = (nunits + UT - 1) / UT;
  fan_geometry g{f.rows, nunits, f.rows * (SWIGLU ? 2 : 1) / RT * ngroups};
  // t / G by umulhi(t, ⌈2^32 / G⌉) is exact while t·G < 2^32 (error term t·(magic·G − 2^32) / 2^32 < 1
  // / G); every t of a block is below its task count (~10^5 at most for the target models).
  if (static_cast<std::uint64_t>(g.tasks) * ngroups >= (std::uint64_t{1} << 32)) return false;
  g.group_magic = ngroups > 1 ? static_cast<std::uint32_t>(((std::uint64_t{1} << 32) + ngroups - 1) / ngroups) : 0;
  // Trimmed: a block whose tasks fit in one round gets as many warps as they need (no idle warp
  // holding registers that another block could use).
  const std::uint32_t threads = trim ? std::min<std::uint32_t>(k_fan_threads, (g.tasks + 31) / 32 * 32) : k_fan_threads;
  fan_flags flags = fan_flags_for<T, RT, UT>(tuning(), threads, p.x.sb_minor);
  flags.pre = pre;
  const auto kernel = fan_kernel<T, SWIGLU, RT, UT>(flags);
  if constexpr (T == ggml_type::q4_k || T == ggml_type::q6_k)
    default_smem_carveout(reinterpret_cast<const void*>(kernel), k_kquant_fan_carveout);
  launch_maybe_pdl_shared(kernel, dim3(f.blocks), dim3(threads), f.smem, pdl, stream, p, g);
  return true;
}

// --- Q4_K on int8 tensor cores (token fmma) ------------------------------------------------------
// The integer sums of a Q4_K unit (unit<q4_k>::finish: Σq·q_hi and Σq·q_lo of its two sub-blocks) are
// exact, so int8 mma gives the same integers as dp4a, and unit<q4_k>::finish the same floats; the
// dots go to shared memory and phase 2 adds them as the fan-out kernel does: the bits of every other
// family.
//
// One super-block of 16 weight rows on mma.m16n8k32: A = the rows' 4-bit weights, B = activations,
// where column 2t (q_hi) and 2t+1 (q_lo) hold sub-block 2t (low-nibble products) or 2t+1 (high
// nibbles) of the super-block and are zero in the k-slots of other chunks. Lane (g, t) = (lane / 4,
// lane mod 4) loads chunk t (the 32 qs bytes of sub-blocks 2t, 2t+1) of A rows g and g + 8, which fills
// exactly its A k-slots of four mma: k-slots 4t..4t+3 and 16+4t..16+4t+3 of mma m take words 2m and
// 2m+1 of the chunk; the B lanes (g', t') with g' / 2 = t' supply the same activation bytes, the others
// zeros. C then leaves in lane (g, t) the four sums of unit t of rows g and g + 8 (c0, c1: row g, hi
// and lo; c2, c3: row g + 8), which that lane finishes and writes to dots[][]. High nibbles are
// multiplied in place (byte & 0xF0 as u8, 16× the nibble) and the sums shifted back.
//
// A warp task is a tile of 16 A rows (16 consecutive rows; SwiGLU: 8 gate rows as A rows 0..7 and the
// same 8 up rows as A rows 8..15) × one super-block. A warp walks its tasks (warp w: tasks w,
// w + warps, …) through a ring of k_mma_stages tasks in registers — the weights (96 bytes a lane) and
// the B bytes — each refilled with the warp's next task as it is done, so a warp's loads run ahead of
// its mma. Session 7's version (its B bytes loaded when used, the task split and the addresses
// computed per super-block) executed as many instructions per weight as the dp4a kernel: ncu (H200
// S17-1, one layer's gate + up) 12.3 M warp instructions against 12.7 M, 38.8 µs against 26.0 µs. This
// one: 9.8 M, 30.0 µs (S17-4), Q4_K_M 458 against 506 tok/s — still opt-in: with 128 registers a thread
// it keeps a third of the dp4a kernel's weight bytes in flight per warp, and the scale decode and float
// finish that every family pays per row and unit are most of what is left (docs/performance.md,
// session 17).
template <bool SIGNED_A>
__device__ __forceinline__ void mma_k32(int (&c)[4], const int (&a)[4], int b0, int b1) {
  if constexpr (SIGNED_A) {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.u8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

constexpr std::uint32_t k_mma_rows = 16;  // A rows of a warp task (the mma's M)
constexpr std::uint32_t k_q4k_block = mv::unit<ggml_type::q4_k>::block_bytes;
// Super-blocks in a warp's ring: two fit in the 128 registers of two 256-thread blocks per SM (three
// spill ~600 bytes).
constexpr int k_mma_stages = 2;

// The B bytes of the lanes that supply none (mma columns without these k-slots' activations).
__device__ const std::int8_t k_mma_zero_b[64] = {};

struct mma_geometry {
  std::uint32_t block_rows;  // output rows of a block (a multiple of a tile's: 16, SwiGLU 8)
  std::uint32_t nunits;      // units per row (4 a super-block; nsb = nunits / 4 super-blocks = warp tasks per tile)
  std::uint32_t tasks;       // per block: tiles · nsb
  // ⌈2^32 / nsb⌉ (nsb ≥ 2; 0 for 1): n / nsb = umulhi(n, nsb_magic) while n·nsb < 2^32.
  std::uint32_t nsb_magic;
};

// One super-block of a tile as lane (g, t) holds it: the headers and chunk t of A rows g and g + 8, and
// (B lanes) the activation bytes of sub-blocks 2t and 2t + 1 at level g & 1.
struct q4k_mma_stage {
  uint4 hd[2];
  uint4 qs[2][2];     // bytes 0..15, 16..31 of the chunk
  uint4 x[4];         // sub-block 2t: bytes 0..15, 16..31; 2t + 1: the same (zeros in other lanes)
  std::uint32_t out;  // dots index of row g's unit 4b + t (row g + 8's: + the launch's out_step)
  std::uint32_t b;    // the super-block
  bool valid;
};

// The super-block of stage st: lane (g, t) writes unit 4b + t of rows g and g + 8 to dots[st.out] and
// dots[st.out + out_step].
__device__ __forceinline__ void q4k_mma_superblock(const q4k_mma_stage& st, const float4* ds, std::uint32_t tq,
                                                   float* dots, std::uint32_t out_step) {
  using U = mv::unit<ggml_type::q4_k>;
  const float4 ds_a = __ldg(ds), ds_b = __ldg(ds + 1);
  int c_lo[4] = {0, 0, 0, 0}, c_hi[4] = {0, 0, 0, 0};
#pragma unroll
  for (int m = 0; m < 4; ++m) {
    const int w0 = 2 * (m & 1), h = m >> 1;  // words 2m, 2m + 1 of the chunk: piece h, words w0, w0 + 1
    const int r0a = mv::word(st.qs[0][h], w0), r1a = mv::word(st.qs[1][h], w0);
    const int r0b = mv::word(st.qs[0][h], w0 + 1), r1b = mv::word(st.qs[1][h], w0 + 1);
    const int alo[4] = {r0a & 0x0F0F0F0F, r1a & 0x0F0F0F0F, r0b & 0x0F0F0F0F, r1b & 0x0F0F0F0F};
    const int ahi[4] = {static_cast<int>(r0a & 0xF0F0F0F0u), static_cast<int>(r1a & 0xF0F0F0F0u),
                        static_cast<int>(r0b & 0xF0F0F0F0u), static_cast<int>(r1b & 0xF0F0F0F0u)};
    mma_k32<true>(c_lo, alo, mv::word(st.x[h], w0), mv::word(st.x[h], w0 + 1));
    mma_k32<false>(c_hi, ahi, mv::word(st.x[2 + h], w0), mv::word(st.x[2 + h], w0 + 1));
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    float dsc_lo, dsc_hi, dm_lo, dm_hi;
    mv::k_scales(st.hd[i], tq, dsc_lo, dsc_hi, dm_lo, dm_hi);
    dots[st.out + i * out_step] = U::finish(dsc_lo, dsc_hi, dm_lo, dm_hi, c_lo[2 * i], c_lo[2 * i + 1], c_hi[2 * i] >> 4,
                                            c_hi[2 * i + 1] >> 4, ds_a, ds_b);
  }
}

template <bool SWIGLU>
__global__ void __launch_bounds__(k_fan_threads, 2) matvec_fanout_q4k_mma_kernel(const mv_params p, const mma_geometry g) {
  extern __shared__ float dots[];  // [local row][unit], as the fan-out kernel's
  const mv_seg sg = pick(p, block_segment<SWIGLU>(p));
  const std::uint32_t br = g.block_rows, nunits = g.nunits, rows = sg.w.rows, nsb = nunits / 4;
  const std::uint32_t row0 = (blockIdx.x - sg.block_begin) * br;
  const std::uint32_t lane = threadIdx.x & 31, gq = lane >> 2, tq = lane & 3, nwarps = blockDim.x >> 5;
  const std::uint32_t out_step = (SWIGLU ? br : 8) * nunits;  // dots of A row g + 8 after row g's
  // B lanes (g / 2 = t) supply column g: level g & 1 of unit t's sub-blocks (+ 256 bytes a super-block);
  // the others load zeros from k_mma_zero_b (one broadcast line in L1: no per-lane branch, no moves).
  const bool b_lane = (gq >> 1) == tq;
  const std::int8_t* const x_lane = ((gq & 1) ? p.x.q8_lo : p.x.q8) + 64 * tq;
  const std::uint32_t x_step = b_lane ? 256 : 0;
  const float4* const ds_lane = p.x.ds + 2 * tq;  // the ds of sub-block 2t (+ 8 a super-block)

  // Where the warp's next load is: task (super-block b of a tile), the pieces' addresses in A rows g, g + 8.
  struct cursor_t {
    std::uint32_t task, out, b;
    const std::uint8_t* w[2];
  } c{};
  auto begin_task = [&] {
    // The division by nsb as a multiply-high (exact: every task index times nsb is far below 2^32).
    const std::uint32_t tile = nsb > 1 ? __umulhi(c.task, g.nsb_magic) : c.task;
    c.b = c.task - tile * nsb;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const std::uint32_t orow = SWIGLU ? tile * 8 + gq : tile * k_mma_rows + gq + 8 * i;  // block-local output row
      const std::byte* qs = SWIGLU && i ? p.seg[1].w.qs : sg.w.qs;
      const std::uint32_t row = min(row0 + orow, rows - 1);  // clamp: result unused
      c.w[i] = reinterpret_cast<const std::uint8_t*>(qs) + (static_cast<std::size_t>(row) * nsb + c.b) * k_q4k_block;
      if (i == 0) c.out = orow * nunits + 4 * c.b + tq;
    }
  };
  auto advance = [&] {
    c.task += nwarps;
    if (c.task < g.tasks) begin_task();
  };
  auto load_weights = [&](q4k_mma_stage& st) {
    st.valid = c.task < g.tasks;
    if (!st.valid) return;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      st.hd[i] = ld16_weights<true>(c.w[i]);
      st.qs[i][0] = ld16_weights<true>(c.w[i] + 16 + 32 * tq);
      st.qs[i][1] = ld16_weights<true>(c.w[i] + 32 + 32 * tq);
    }
    st.out = c.out;
    st.b = c.b;
    advance();
  };
  auto load_acts = [&](q4k_mma_stage& st) {
    const std::int8_t* xq = b_lane ? x_lane + static_cast<std::size_t>(x_step) * st.b : k_mma_zero_b;
#pragma unroll
    for (int k = 0; k < 4; ++k) st.x[k] = blocks::ld16(xq + 16 * k);
  };

  // The ring's first super-blocks are requested before the wait for the producer of x (weights never
  // depend on it), their B bytes after it.
  c.task = threadIdx.x >> 5;
  if (c.task < g.tasks) begin_task();
  q4k_mma_stage ring[k_mma_stages];
#pragma unroll
  for (int j = 0; j < k_mma_stages; ++j) load_weights(ring[j]);
  pdl_wait_and_release();
#pragma unroll
  for (int j = 0; j < k_mma_stages; ++j) load_acts(ring[j]);
  for (bool more = ring[0].valid; more;) {
#pragma unroll
    for (int j = 0; j < k_mma_stages; ++j) {
      if (!ring[j].valid) {
        more = false;
        break;
      }
      q4k_mma_superblock(ring[j], ds_lane + 8 * ring[j].b, tq, dots, out_step);
      load_weights(ring[j]);
      load_acts(ring[j]);
    }
  }
  __syncthreads();
  add_and_store_rows<SWIGLU>(sg, dots, br, nunits, row0);
}

// SMs of the current device (queried once: a worker serves one device).
std::uint32_t device_sms() {
  static const std::uint32_t sms = current_device_sms();
  return sms;
}

// Warp tasks of one super-block (measured best, H200 runs S17-3 / S17-4: Q4_K_M 459.1 / 458.3 tok/s
// against 452.3 / 450.0 with tasks of two consecutive super-blocks, 435.4 with three, 424.7 with four,
// 377.7 with seven; S17-6: 269.0 with a whole row a task; the multi-super-block tasks were removed in
// session 18). Blocks of block_rows output rows (rounded to whole tiles) when block_rows > 0, else
// sized so that the grid is one wave of two blocks per SM; false when a block's dots do not fit in
// shared memory.
template <bool SWIGLU>
bool launch_q4k_mma(mv_params& p, bool pdl, cudaStream_t stream, int block_rows) {
  constexpr std::uint32_t tile = SWIGLU ? k_mma_rows / 2 : k_mma_rows;  // output rows of a tile
  const std::uint32_t nunits = mv::unit<ggml_type::q4_k>::count(p.seg[0].w.cols), nsb = nunits / 4;
  if (block_rows <= 0) {
    std::uint32_t tiles = 0;
    for (int s = 0; s < (SWIGLU ? 1 : p.nseg); ++s) tiles += (p.seg[s].w.rows + tile - 1) / tile;
    const std::uint32_t slots = 2 * device_sms();
    block_rows = static_cast<int>((tiles + slots - 1) / slots * tile);
  }
  const fan_blocks f = plan_dot_blocks<SWIGLU>(p, nunits, block_rows, tile);
  if (f.rows == 0) return false;
  mma_geometry g{f.rows, nunits, f.rows / tile * nsb,
                 nsb > 1 ? static_cast<std::uint32_t>(((std::uint64_t{1} << 32) + nsb - 1) / nsb) : 0};
  // umulhi(n, magic) = ⌊n / nsb⌋ while n·nsb < 2^32 (as launch_rt's): n ≤ tasks.
  if (static_cast<std::uint64_t>(g.tasks) * nsb >= (std::uint64_t{1} << 32)) return false;
  const std::uint32_t threads = std::min<std::uint32_t>(k_fan_threads, g.tasks * 32);
  launch_maybe_pdl_shared(matvec_fanout_q4k_mma_kernel<SWIGLU>, dim3(f.blocks), dim3(threads), f.smem, pdl, stream, p, g);
  return true;
}

template <ggml_type T>
constexpr bool tunable() {
  return T == ggml_type::q4_k || T == ggml_type::q6_k || T == ggml_type::q8_0 || T == ggml_type::f16;
}

// Per-type defaults (H100, session 6 runs S6-2/3/6/8, against the variants fu1/fu2/fu4, ft1/ft2/ft4,
// fb2…fb32 and ftrim): F16 four rows and one unit per task in blocks of 4 rows (187 tok/s; two rows ×
// two units 181, × one unit 178; one row 155–175); Q8_0 two rows and one unit per task in blocks of 4
// rows (300–302 tok/s; 282 with 2 rows, 298 with 8, 282 with 16, 250 with 32; four rows per task
// 293–299). Rows per task share the activation loads of a unit. The K-quants: four rows per task in
// trimmed blocks (Q4_K_M 366–368 tok/s in runs S6-6/8 vs 360–364 for the streaming kernel, 323–347
// with two rows per task in full blocks).
// Q8_0's gate + up launch alone takes four rows a task (fgtN: the task rows of SwiGLU launches):
// one round of 224 tasks a 4-row block, where two-row tasks took two (448 tasks on 256 threads). H200
// run S19-1, batch 1: 422.0 tok/s (420.4 with 8-row blocks) against 413.6 / 416.8 for two-row tasks
// (fg2 412.4, fg8 404.7, fgt1 with 2-row blocks 383.4); Q4_K_M unchanged (its gate + up is Q4_K,
// four rows already). Session 6's "four rows per task 293–299" was every Q8_0 launch at once.
template <ggml_type T>
constexpr int default_task_rows(bool swiglu) {
  return T == ggml_type::q8_0 && !swiglu ? 2 : 4;
}
template <ggml_type T>
constexpr bool default_trim() {
  return T == ggml_type::q4_k || T == ggml_type::q6_k;
}
constexpr int k_default_block_rows = 4;
// Rows at least this long (the FFN down projection of the target models, K = 18,944) have blocks of
// their own height (fdN, and fdtN / fduN for the task shape there). K-quants: 16 rows (one wave of
// 224 blocks for the 3,584 rows of down: Q4_K_M 381 tok/s vs 365 with 4 rows, 378–380 with 8, 358
// with 12 (two waves), 367 with 32; H100 runs S7-1/2). Q8_0 and F16 keep 4 (Q8_0 lost 1–5 % with 2,
// 6, 8, 10, 12, 16, 24 or 32 rows, with 1 or 4 rows per task or 2 units per task; F16 within ±0.5 %).
constexpr std::uint32_t k_fan_long_k = 8192;
// Launches of at most this many weights (Q, K, V and wo of the target models; not gate + up, down or
// the output) have blocks of their own height (fsbN, and fsrN for the task rows there). Q8_0: 8 rows
// (311.4 tok/s vs 305.9 / 306.9 with 4, H100 run S7-7; 4-row tasks there lost 1-2 %, 8-row blocks
// for every launch lost in S6-3/4); the others 4 (Q4_K_M 381.0 with 8 vs 381.4 / 384.3, F16 187.4
// vs 188.2 / 187.8; fewer rows per task or per block lost 1-6 % for all three).
constexpr std::uint64_t k_fan_small_weights = std::uint64_t{24} << 20;
template <ggml_type T>
constexpr int default_small_block_rows() {
  return T == ggml_type::q8_0 ? 8 : k_default_block_rows;
}
template <ggml_type T>
constexpr int default_long_block_rows() {
  return T == ggml_type::q4_k || T == ggml_type::q6_k ? 16 : k_default_block_rows;
}

// The task shape (rows, units per task) of a one-column launch of T under the tuning, for rows of the
// long (K ≥ k_fan_long_k) and / or small (≤ k_fan_small_weights weights a launch) class: the types
// without tuned defaults take two rows × one unit; four-row tasks take one unit.
struct fan_task_shape {
  int rt, ut;
};
template <ggml_type T>
fan_task_shape fan_task_shape_for(const mv_tuning& t, bool long_rows, bool small, bool swiglu) {
  if constexpr (!tunable<T>()) {
    return {2, 1};
  } else {
    int rt = t.fanout_task_rows ? t.fanout_task_rows : default_task_rows<T>(swiglu);
    if (long_rows && t.fanout_long_task_rows) rt = t.fanout_long_task_rows;
    if (small && t.fanout_small_task_rows) rt = t.fanout_small_task_rows;
    if (swiglu && t.fanout_swiglu_task_rows) rt = t.fanout_swiglu_task_rows;
    int ut = t.fanout_task_units ? t.fanout_task_units : 1;
    if (long_rows && t.fanout_long_task_units) ut = t.fanout_long_task_units;
    if (rt != 4 && rt != 1) rt = 2;
    if (rt == 4 || (ut != 4 && ut != 2)) ut = 1;
    return {rt, ut};
  }
}

}  // namespace

bool fanout_reads_sb_minor(ggml_type type) {
  const mv_tuning& t = tuning();
  // The flags fan_flags_for would give the kernel beside superblock-minor activations, and the mma kernel.
  if (t.fanout_mma == 1 || t.fanout_trace == 1 || t.fanout_evict_first == 0 || t.hi_only == 1) return false;
  auto four_rows = [&](auto shape_for) {
    for (const bool long_rows : {false, true})
      for (const bool small : {false, true})
        for (const bool swiglu : {false, true})
          if (shape_for(t, long_rows, small, swiglu).rt != 4) return false;
    return true;
  };
  if (type == ggml_type::q4_k) return four_rows(fan_task_shape_for<ggml_type::q4_k>);
  if (type == ggml_type::q6_k) return four_rows(fan_task_shape_for<ggml_type::q6_k>);
  return false;
}

template <ggml_type T, bool SWIGLU>
bool launch_fanout(mv_params& p, bool pdl, cudaStream_t stream) {
  if (p.x.ncols != 1) return false;
  const mv_tuning& t = tuning();
  const bool long_rows = p.seg[0].w.cols >= k_fan_long_k;
  std::uint64_t weights = 0;
  for (int s = 0; s < (SWIGLU ? 2 : p.nseg); ++s) weights += static_cast<std::uint64_t>(p.seg[s].w.rows) * p.seg[s].w.cols;
  const bool small = weights <= k_fan_small_weights;
  int rows = t.fanout_rows                ? t.fanout_rows
             : long_rows                  ? default_long_block_rows<T>()
             : small                      ? default_small_block_rows<T>()
                                          : k_default_block_rows;
  if (long_rows && t.fanout_long_rows) rows = t.fanout_long_rows;
  if (small && t.fanout_small_rows) rows = t.fanout_small_rows;
  if (SWIGLU && t.fanout_swiglu_rows) rows = t.fanout_swiglu_rows;
  const bool trim = t.fanout_trim >= 0 ? t.fanout_trim == 1 : default_trim<T>();

  if constexpr (T == ggml_type::q4_k) {
    if (t.fanout_mma == 1) {
      // Blocks sized to one wave (fbN / fdN / fsbN: given rows), one super-block a warp task.
      int mma_rows = t.fanout_rows;
      if (long_rows && t.fanout_long_rows) mma_rows = t.fanout_long_rows;
      if (small && t.fanout_small_rows) mma_rows = t.fanout_small_rows;
      return launch_q4k_mma<SWIGLU>(p, pdl, stream, mma_rows);
    }
  }
  if constexpr (!tunable<T>()) {
    return launch_rt<T, SWIGLU, 2, 1>(p, pdl, stream, rows, trim);  // the only shape instantiated for T
  } else {
    using launcher = bool (*)(mv_params&, bool, cudaStream_t, int, bool);
    const fan_task_shape sh = fan_task_shape_for<T>(t, long_rows, small, SWIGLU);
    const launcher chosen =
        sh.rt == 4   ? launch_rt<T, SWIGLU, 4, 1>
        : sh.rt == 1 ? (sh.ut == 4 ? launch_rt<T, SWIGLU, 1, 4> : sh.ut == 2 ? launch_rt<T, SWIGLU, 1, 2> : launch_rt<T, SWIGLU, 1, 1>)
                     : (sh.ut == 4 ? launch_rt<T, SWIGLU, 2, 4> : sh.ut == 2 ? launch_rt<T, SWIGLU, 2, 2> : launch_rt<T, SWIGLU, 2, 1>);
    return chosen(p, pdl, stream, rows, trim);
  }
}

WORKER_MATVEC_LAUNCHERS(bool, launch_fanout)

void set_fan_trace(fan_trace_record* records) {
  WORKER_CUDA_CHECK(cudaMemcpyToSymbol(g_fan_trace, &records, sizeof(records)));
}

}  // namespace worker::gpu::mvk
