// Kernels, launchers and typed entries of matvec.cuh.
#include "gpu/matvec.cuh"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "gpu/block_trace.cuh"
#include "gpu/gpu_error.hpp"
#include "gpu/matvec_common.cuh"
#include "gpu/matvec_units.cuh"
#include "gpu/q8_act.cuh"
#include "model/comma_list.hpp"

namespace worker::gpu {

namespace mvk {

namespace {

// Parses WORKER_ORCD_MATVEC_VARIANT-style token lists (see mv_tuning).
mv_tuning parse_tuning(const std::string& spec) {
  mv_tuning t;
  for (const std::string& tok : model::split_comma_list(spec)) {
    if (tok == "legacy") t.family = 0;
    else if (tok == "staged") t.family = 1;
    else if (tok == "stream") t.family = 2;
    else if (tok == "fanout") t.family = 3;
    else if (tok == "ft1" || tok == "ft2" || tok == "ft4") t.fanout_task_rows = tok[2] - '0';
    else if (tok == "ftrim") t.fanout_trim = 1;
    else if (tok == "fwide") t.fanout_trim = 0;
    else if (tok == "fsr1" || tok == "fsr2" || tok == "fsr4") t.fanout_small_task_rows = tok[3] - '0';
    else if (tok.size() > 3 && tok.rfind("fsb", 0) == 0 && tok.find_first_not_of("0123456789", 3) == std::string::npos &&
             tok.size() <= 6) t.fanout_small_rows = std::stoi(tok.substr(3));
    else if (tok == "fgt1" || tok == "fgt2" || tok == "fgt4") t.fanout_swiglu_task_rows = tok[3] - '0';
    else if (tok.size() > 2 && tok.rfind("fg", 0) == 0 && tok.find_first_not_of("0123456789", 2) == std::string::npos &&
             tok.size() <= 5) t.fanout_swiglu_rows = std::stoi(tok.substr(2));
    else if (tok == "hionly") t.hi_only = 1;
    else if (tok == "fwef") t.fanout_evict_first = 1;
    else if (tok == "nowef") t.fanout_evict_first = 0;
    else if (tok == "ftrace") t.fanout_trace = 1;
    else if (tok == "nonarrow") t.fanout_narrow = 0;
    else if (tok == "fmma") t.fanout_mma = 1;
    else if (tok == "nomma") t.fanout_mma = 0;
    else if (tok == "fdt1" || tok == "fdt2" || tok == "fdt4") t.fanout_long_task_rows = tok[3] - '0';
    else if (tok == "fdu1" || tok == "fdu2" || tok == "fdu4") t.fanout_long_task_units = tok[3] - '0';
    else if (tok == "fu1" || tok == "fu2" || tok == "fu4") t.fanout_task_units = tok[2] - '0';
    else if (tok.size() > 2 && (tok.rfind("fb", 0) == 0 || tok.rfind("fs", 0) == 0 || tok.rfind("fd", 0) == 0) &&
             tok.find_first_not_of("0123456789", 2) == std::string::npos && tok.size() <= 6) {
      const int n = std::stoi(tok.substr(2));
      if (tok[1] == 'b') t.fanout_rows = n;
      else if (tok[1] == 'd') t.fanout_long_rows = n;
      else t.fanout_below = n;
    }
    else if (tok == "str1" || tok == "str2") {
      t.family = 2;
      t.stream_rows = tok[3] - '0';
    } else if (tok == "sts2" || tok == "sts3" || tok == "sts4" || tok == "sts6" || tok == "sts8") {
      t.family = 2;
      t.stream_stages = tok[3] - '0';
    } else if (tok == "s2" || tok == "s3" || tok == "s4" || tok == "s6" || tok == "s8") {
      t.family = 1;
      t.stages = tok[1] - '0';
    } else if (tok == "s4r1" || tok == "s4r2") {
      t.family = 1;
      t.stages = 4;
      t.rows = tok[3] - '0';
    } else if (tok == "r1u4") { t.family = 0; t.legacy_variant = 1; }
    else if (tok == "r1u2") { t.family = 0; t.legacy_variant = 2; }
    else if (tok == "r2u2") { t.family = 0; t.legacy_variant = 3; }
    else if (tok == "r2u4") { t.family = 0; t.legacy_variant = 4; }
    else if (tok == "r4u1") { t.family = 0; t.legacy_variant = 5; }
    else if (tok == "pf") t.prefetch = 1;
    else if (tok == "pfhead") t.prefetch = 2;
    else if (tok == "nopf") t.prefetch = 0;
    else if (tok == "pdl") t.pdl = 1;
    else if (tok == "nopdl") t.pdl = 0;
    else if (tok == "early") t.early = 1;
    else if (tok == "noprebias") t.fanout_pre_bias = 0;
    else if (tok == "prebias") t.fanout_pre_bias = 1;
    else if (tok == "late") t.early = 0;
    else if (tok.rfind("legacy@", 0) == 0 || tok.rfind("staged@", 0) == 0 || tok.rfind("stream@", 0) == 0 ||
             tok.rfind("fanout@", 0) == 0) {
      const std::string type = tok.substr(7);
      int id = -1;
      for (const ggml_type ty : {ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k, ggml_type::q8_0, ggml_type::q4_0,
                                ggml_type::q5_0, ggml_type::f16, ggml_type::bf16, ggml_type::f32})
        if (type == model::type_name(ty)) id = static_cast<int>(ty);
      if (id < 0 || id >= 32) throw gpu_error(gpu_error_code::invalid_argument, "matvec variant: unknown type in " + tok);
      t.family_of[id] = tok.rfind("legacy@", 0) == 0 ? 0 : tok.rfind("staged@", 0) == 0 ? 1 : tok.rfind("stream@", 0) == 0 ? 2 : 3;
    } else throw gpu_error(gpu_error_code::invalid_argument, "matvec variant: unknown token " + tok);
  }
  return t;
}

mv_tuning& tuning_storage() {
  static mv_tuning t = [] {
    const char* e = std::getenv("WORKER_ORCD_MATVEC_VARIANT");
    return parse_tuning(e ? e : "");
  }();
  return t;
}

}  // namespace

const mv_tuning& tuning() { return tuning_storage(); }

}  // namespace mvk

namespace {

using model::ggml_type;
using namespace mvk;
constexpr int k_threads = 256;
constexpr int k_warps = k_threads / 32;

// --- tier 1: the kernel ----------------------------------------------------------------------------
// Warp w of block b owns rows [R·g, R·g + R) of its segment, g = (b − block_begin)·8 + w. SWIGLU:
// segment 0 is gate, 1 is up; the warp computes its R rows of both and writes silu(g)·u through
// segment 0's y/ldy.
// RV, UV: rows per warp and units in flight when non-zero (tuning variants), else the defaults above.
// The result does not depend on them (same lane→unit assignment and addition order).
template <ggml_type T, int NC, bool SWIGLU, int RV = 0, int UV = 0>
__global__ void __launch_bounds__(k_threads) matvec_kernel(const mv_params p) {
  using U = mv::unit<T>;
  constexpr int R = RV ? RV : rows_per_warp<T, NC>();
  constexpr int RR = SWIGLU ? 2 * R : R;
  constexpr int UF = UV ? UV : units_in_flight<T, NC>();

  int s = 0;
  if (!SWIGLU) {
    if (p.nseg > 1 && blockIdx.x >= p.seg[1].block_begin) s = 1;
    if (p.nseg > 2 && blockIdx.x >= p.seg[2].block_begin) s = 2;
  }
  const mv_seg sg = pick(p, s);
  const device_matrix w0 = sg.w;
  const device_matrix w1 = SWIGLU ? p.seg[1].w : sg.w;
  const int lane = threadIdx.x & 31;
  const std::uint32_t group = (blockIdx.x - sg.block_begin) * k_warps + (threadIdx.x >> 5);
  const std::uint32_t row0 = group * R;
  if (row0 >= w0.rows) return;  // the whole warp
  const std::uint32_t nunits = U::count(w0.cols);
  // A batch: UF units (32 apart) of each of the RR rows, loaded into registers before any is used.
  typename U::w_t wr[UF][RR];
  auto load_batch = [&](std::uint32_t u0) {
#pragma unroll
    for (int j = 0; j < UF; ++j) {
      const std::uint32_t u = u0 + 32 * j;
      if (u < nunits) {
#pragma unroll
        for (int r = 0; r < RR; ++r) {
          const std::uint32_t row = min(row0 + static_cast<std::uint32_t>(r % R), w0.rows - 1);  // clamp: result unused
          mv::load_w<T>(r < R ? w0 : w1, row, u, wr[j][r]);
        }
      }
    }
  };
  const std::uint32_t ncols = p.x.ncols;
  float acc[RR][NC];
  auto add_batch = [&](std::uint32_t u0) {
#pragma unroll
    for (int j = 0; j < UF; ++j) {
      const std::uint32_t u = u0 + 32 * j;
      if (u < nunits) mv::add_unit<T>(wr[j], p.x, u, ncols, acc);
    }
  };
  // Weights never depend on the previous kernel: before waiting, as a programmatic dependent, for the
  // producer of x / y, this warp's rows are prefetched into L2 (p.prefetch) and, at one column, its first
  // batch is loaded (p.early). That batch is peeled off the loop so that the loop stays as it was (the
  // same loop with a per-iteration choice cost F16 ~8 %, H100 session 4 run S4-10), and only at one
  // column: with more columns the peeled copy cost up to 17 % (more registers; H100 session 5 run S5-3).
  if (lane == 0 && p.prefetch) {
    const std::uint32_t n = min(static_cast<std::uint32_t>(R), w0.rows - row0);
    prefetch_rows<T>(w0, row0, n, prefetch_cap(p.prefetch));
    if (SWIGLU) prefetch_rows<T>(w1, row0, n, prefetch_cap(p.prefetch));
  }
  std::uint32_t u_begin = static_cast<std::uint32_t>(lane);
  if constexpr (NC == 1) {
    if (p.early) {
      load_batch(u_begin);
      pdl_wait_and_release();
      clear(acc);
      add_batch(u_begin);
      u_begin += 32 * UF;
    }
  }
  if (NC != 1 || !p.early) {
    pdl_wait_and_release();
    clear(acc);
  }
  for (std::uint32_t u0 = u_begin; u0 < nunits; u0 += 32 * UF) {
    load_batch(u0);
    add_batch(u0);
  }

  sum_lanes(acc);

  store_rows<R, NC, SWIGLU, RR>(sg, w0.rows, row0, ncols, lane, acc);
}

// One warp per 32-element block of one column (two-level int8, q8_act.cuh).
__global__ void quantize_q8_kernel(const float* __restrict__ x, std::uint32_t ldx, std::uint32_t k,
                                   std::int8_t* __restrict__ hi, std::int8_t* __restrict__ lo, std::uint32_t ld_q8,
                                   float4* __restrict__ ds, std::uint32_t ld_ds, bool early_trigger, bool sb_minor) {
  // Launched as a programmatic dependent: wait for the producer of x. A programmatic dependent of this
  // grid (the next matvec) may start after the wait, or before it with early_trigger: it only loads
  // weights until this grid has completed.
  block_tracer bt;
  bt.begin();
  if (early_trigger) asm volatile("griddepcontrol.launch_dependents;");
  bt.claim();
  asm volatile("griddepcontrol.wait;" ::: "memory");
  bt.waited();
  if (!early_trigger) asm volatile("griddepcontrol.launch_dependents;");
  const std::uint32_t c = blockIdx.y;
  const std::uint32_t blk = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (blk * 32 >= k) return;  // (thread 0's warp always has a block: its record is written below)
  const float v = x[static_cast<std::size_t>(c) * ldx + blk * 32 + lane];
  if (sb_minor) {
    const std::size_t at = static_cast<std::size_t>(c) * ld_q8;
    q8::quantize_block_sb_minor(v, lane, hi + at, lo + at, ds + static_cast<std::size_t>(c) * ld_ds, blk * 32, k / 256);
    bt.end(traced_kernel::quantize_q8);
    return;
  }
  const std::size_t off = static_cast<std::size_t>(c) * ld_q8 + blk * 32;
  q8::quantize_block(v, lane, hi + off, lo + off, ds + static_cast<std::size_t>(c) * ld_ds + blk);
  bt.end(traced_kernel::quantize_q8);
}

// --- tier 2: launchers -----------------------------------------------------------------------------

template <ggml_type T, int NC, bool SWIGLU, int RV = 0, int UV = 0>
void launch_nc(mv_params& p, bool pdl, cudaStream_t stream) {
  constexpr int R = RV ? RV : rows_per_warp<T, NC>();
  std::uint32_t blocks = 0;
  const int nseg = SWIGLU ? 1 : p.nseg;
  for (int s = 0; s < nseg; ++s) {
    p.seg[s].block_begin = blocks;
    const std::uint32_t groups = (p.seg[s].w.rows + R - 1) / R;
    blocks += (groups + k_warps - 1) / k_warps;
  }
  if (SWIGLU) p.seg[1].block_begin = 0;
  // Programmatic dependent launch (when on): the kernel may start while its predecessor finishes; it
  // prefetches weights, then waits (griddepcontrol.wait) before touching the predecessor's outputs.
  launch_kernel(matvec_kernel<T, NC, SWIGLU, RV, UV>, blocks, k_threads, pdl, p, stream);
}

// Single-column legacy variants (mv_tuning::legacy_variant), for measuring on the card without rebuilding.
template <ggml_type T, bool SWIGLU>
bool launch_variant(mv_params& p, bool pdl, cudaStream_t stream) {
  if constexpr (T == ggml_type::q4_k || T == ggml_type::q6_k || T == ggml_type::q8_0 || T == ggml_type::f16) {
    switch (tuning().legacy_variant) {
      case 1: launch_nc<T, 1, SWIGLU, 1, 4>(p, pdl, stream); return true;
      case 2: launch_nc<T, 1, SWIGLU, 1, 2>(p, pdl, stream); return true;
      case 3: launch_nc<T, 1, SWIGLU, 2, 2>(p, pdl, stream); return true;
      case 4: launch_nc<T, 1, SWIGLU, 2, 4>(p, pdl, stream); return true;
      case 5: launch_nc<T, 1, SWIGLU, 4, 1>(p, pdl, stream); return true;
      default: return false;
    }
  }
  return false;
}

// Defaults (measured on an H100, docs/performance.md, session 3 runs 5-6, session 6 runs S6-1…6, session 7,
// Q4_K_M / Q8_0 / F16 files):
// - one column: the fan-out kernel for Q4_K, Q6_K (Q4_K_M 383–385 tok/s vs 361–363 streaming, S7-3/5;
//   272 staged, 304 legacy in session 3), Q8_0 (300–302 vs 288–291 streaming, S6-3/4/6) and F16 (187 vs 175
//   legacy, S6-4/6); the streaming kernel for Q5_K.
// - 2-16 columns: the legacy kernel (4 columns, Q4_K_M: 705 vs 645 streaming, 591 staged; Q8_0 709 vs
//   638), except F16 at 2-4 columns, staged (369 vs 334 legacy).
// All families give identical bits, so the choice by column count keeps batch invariance. The L2
// bulk prefetch cost 7-17 % for Q8_0 and F16 and gained nothing for staged: off.
template <ggml_type T>
int default_family(std::uint32_t ncols) {
  constexpr bool streamed = T == ggml_type::q5_k;
  constexpr bool fanned = T == ggml_type::q4_k || T == ggml_type::q6_k || T == ggml_type::q8_0 || T == ggml_type::f16;
  if (ncols <= 1) return streamed ? 2 : fanned ? 3 : 0;
  if (T == ggml_type::f16) return ncols <= 4 ? 1 : 0;
  return 0;
}
template <ggml_type T>
constexpr int default_prefetch() { return 0; }
constexpr bool k_default_pdl = true;
constexpr int k_default_early = 1;  // legacy kernel at one column (H100, session 5 runs S5-3…5: F16 +0.4 … +1.6 %)

// Weights of one launch (every segment; gate and up for SwiGLU).
std::uint64_t launch_weights(const mv_params& p, bool swiglu) {
  std::uint64_t n = 0;
  for (int s = 0; s < (swiglu ? 2 : p.nseg); ++s) n += static_cast<std::uint64_t>(p.seg[s].w.rows) * p.seg[s].w.cols;
  return n;
}

template <ggml_type T, bool SWIGLU>
void launch_type(mv_params& p, cudaStream_t stream) {
  const mv_tuning& t = tuning();
  p.prefetch = t.prefetch >= 0 ? t.prefetch : default_prefetch<T>();
  p.early = t.early >= 0 ? t.early : k_default_early;
  p.pre_bias = t.fanout_pre_bias != 0 ? 1 : 0;
  const bool pdl = t.pdl >= 0 ? t.pdl != 0 : k_default_pdl;
  int fam = t.family_of[static_cast<int>(T)] >= 0 ? t.family_of[static_cast<int>(T)] : t.family;
  if (fam < 0 && t.fanout_below >= 0 && launch_weights(p, SWIGLU) <= (static_cast<std::uint64_t>(t.fanout_below) << 20)) fam = 3;
  int family = fam >= 0 ? fam : default_family<T>(p.x.ncols);
  if (p.x.sb_minor) {
    // Only the default one-column fan-out kernel of Q4_K / Q6_K reads this layout (no fallback).
    if (p.x.ncols == 1 && matvec_accepts_sb_minor(T) && launch_fanout<T, SWIGLU>(p, pdl, stream)) return;
    throw gpu_error(gpu_error_code::invalid_argument,
                    "matvec: superblock-minor activations need one column, Q4_K/Q6_K weights and the default fan-out tuning");
  }
  if (family == 3) {
    if (launch_fanout<T, SWIGLU>(p, pdl, stream)) return;
    // More columns than the fan-out kernel takes, or rows too long for its shared memory.
    family = default_family<T>(p.x.ncols) == 3 ? 0 : default_family<T>(p.x.ncols);
  }
  if (family == 2) {
    if (launch_stream<T, SWIGLU>(p, pdl, stream)) return;
    family = default_family<T>(p.x.ncols) == 1 ? 1 : 0;  // more columns than the streaming kernels take
  }
  if (family == 1) {
    launch_staged<T, SWIGLU>(p, pdl, stream);
    return;
  }
  const std::uint32_t n = p.x.ncols;
  if (n <= 1 && launch_variant<T, SWIGLU>(p, pdl, stream)) return;
  if (n <= 1) launch_nc<T, 1, SWIGLU>(p, pdl, stream);
  else if (n <= 2) launch_nc<T, 2, SWIGLU>(p, pdl, stream);
  else if (n <= 4) launch_nc<T, 4, SWIGLU>(p, pdl, stream);
  else if (n <= 8) launch_nc<T, 8, SWIGLU>(p, pdl, stream);
  else launch_nc<T, 16, SWIGLU>(p, pdl, stream);
}

template <bool SWIGLU>
void launch(mv_params& p, cudaStream_t stream) {
  switch (p.seg[0].w.type) {
    case ggml_type::q4_k: launch_type<ggml_type::q4_k, SWIGLU>(p, stream); break;
    case ggml_type::q5_k: launch_type<ggml_type::q5_k, SWIGLU>(p, stream); break;
    case ggml_type::q6_k: launch_type<ggml_type::q6_k, SWIGLU>(p, stream); break;
    case ggml_type::q8_0: launch_type<ggml_type::q8_0, SWIGLU>(p, stream); break;
    case ggml_type::q4_0: launch_type<ggml_type::q4_0, SWIGLU>(p, stream); break;
    case ggml_type::q5_0: launch_type<ggml_type::q5_0, SWIGLU>(p, stream); break;
    case ggml_type::f16: launch_type<ggml_type::f16, SWIGLU>(p, stream); break;
    case ggml_type::bf16: launch_type<ggml_type::bf16, SWIGLU>(p, stream); break;
    case ggml_type::f32: launch_type<ggml_type::f32, SWIGLU>(p, stream); break;
    default: throw gpu_error(gpu_error_code::invalid_argument, "matvec: unsupported weight type");
  }
  WORKER_CUDA_CHECK_LAUNCH("matvec_kernel");
}

void require(bool ok, const std::string& what) {
  if (!ok) throw gpu_error(gpu_error_code::invalid_argument, "matvec: " + what);
}

std::uint32_t unit_elems(ggml_type t) {
  switch (t) {
    case ggml_type::q4_k:
    case ggml_type::q5_k:
    case ggml_type::q6_k: return 256;
    case ggml_type::f32: return 4;
    case ggml_type::f16:
    case ggml_type::bf16: return 8;
    default: return 32;
  }
}

void check_input(const device_matrix& w, const matvec_x& x) {
  require(cuda_supports(w.type), "unsupported weight type");
  require(w.cols % unit_elems(w.type) == 0, "row length " + std::to_string(w.cols) + " not a multiple of " +
                                                std::to_string(unit_elems(w.type)));
  require(x.ncols >= 1 && x.ncols <= k_matvec_max_cols, "1..16 columns");
  require(w.rows >= 1, "empty weight");
  if (matvec_uses_q8(w.type)) {
    require(x.q8 && x.q8_lo && x.ds && x.ld_q8 % 16 == 0 && x.ld_q8 >= w.cols && x.ld_ds >= w.cols / 32,
            "bad q8 activations");
  } else {
    require(x.f32 && x.ld_f32 % 4 == 0 && x.ld_f32 >= w.cols, "bad fp32 activations");
  }
}

}  // namespace

// --- tier 3: typed entries -------------------------------------------------------------------------

void set_matvec_variant(const std::string& spec) { mvk::tuning_storage() = mvk::parse_tuning(spec); }

void set_matvec_trace(fan_trace_record* records) { mvk::set_fan_trace(records); }

bool matvec_uses_q8(ggml_type type) {
  return type != ggml_type::f16 && type != ggml_type::bf16 && type != ggml_type::f32;
}

bool matvec_accepts_sb_minor(ggml_type type) {
  const mv_tuning& t = tuning();
  const int fam = t.family_of[static_cast<int>(type)] >= 0 ? t.family_of[static_cast<int>(type)] : t.family;
  // The fan-out family for every launch (the default for Q4_K / Q6_K at one column), then its own rule.
  return (fam < 0 || fam == 3) && t.fanout_below < 0 && mvk::fanout_reads_sb_minor(type);
}

void matvec(std::span<const matvec_out> outs, const matvec_x& x, cudaStream_t stream) {
  require(!outs.empty() && outs.size() <= 3, "1..3 weights per launch");
  mv_params p{};
  p.x = x;
  p.nseg = static_cast<int>(outs.size());
  for (std::size_t i = 0; i < outs.size(); ++i) {
    const matvec_out& o = outs[i];
    check_input(o.w, x);
    require(o.w.type == outs[0].w.type && o.w.cols == outs[0].w.cols, "weights of one launch share type and K");
    require(o.y && o.ldy >= o.w.rows, "bad output");
    p.seg[i] = {o.w, o.bias, o.y, o.ldy, o.accumulate ? (o.residual_final ? 2 : 1) : 0, 0};
  }
  launch<false>(p, stream);
}

void matvec_swiglu(const device_matrix& gate, const device_matrix& up, const matvec_x& x, float* y, std::uint32_t ldy,
                   cudaStream_t stream) {
  check_input(gate, x);
  check_input(up, x);
  require(gate.type == up.type && gate.rows == up.rows && gate.cols == up.cols, "gate and up must match");
  require(y && ldy >= gate.rows, "bad output");
  mv_params p{};
  p.x = x;
  p.nseg = 2;
  p.seg[0] = {gate, nullptr, y, ldy, 0, 0};
  p.seg[1] = {up, nullptr, y, ldy, 0, 0};
  launch<true>(p, stream);
}

void quantize_q8(const float* x, std::uint32_t ldx, std::uint32_t k, std::uint32_t ncols, std::int8_t* hi,
                 std::int8_t* lo, std::uint32_t ld_q8, float4* ds, std::uint32_t ld_ds, cudaStream_t stream, bool pdl,
                 bool early_trigger, bool sb_minor) {
  require(k % 32 == 0 && ldx >= k && ld_q8 >= k && ld_ds >= k / 32 && ncols >= 1, "quantize_q8: bad shape");
  require(!sb_minor || (ncols == 1 && k % 256 == 0), "quantize_q8: superblock-minor layout needs one column, k % 256 == 0");
  const std::uint32_t nblk = k / 32;
  launch_maybe_pdl(quantize_q8_kernel, dim3((nblk + 3) / 4, ncols), dim3(128), pdl, stream, x, ldx, k, hi, lo, ld_q8, ds, ld_ds,
                   early_trigger, sb_minor);
}

}  // namespace worker::gpu
