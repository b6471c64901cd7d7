// Kernels, launchers and typed entries of matvec.cuh.
#include "gpu/matvec.cuh"

#include <cstdlib>
#include <string>

#include "gpu/gpu_error.hpp"
#include "gpu/matvec_units.cuh"
#include "gpu/q8_act.cuh"

namespace worker::gpu {

namespace {

using model::ggml_type;
constexpr int k_threads = 256;
constexpr int k_warps = k_threads / 32;

struct mv_seg {
  device_matrix w;
  const float* bias;
  float* y;
  std::uint32_t ldy;
  int accumulate;
  std::uint32_t block_begin;  // first grid block of this segment
};

struct mv_params {
  mv_seg seg[3];
  int nseg;
  matvec_x x;
};

// Rows per warp: every activation load (two levels: 4× the weight bytes of a 4-bit row) is shared by
// the warp's R rows. Without that, L1 load wavefronts for the activations, not DRAM, limit the kernel
// (measured: ~1.2 TB/s with R = 1 on an H200). Q6_K's decoded unit is large, so it stops at 2.
// Single column: measured on an H200 (bench, Q4_K_M / Q8_0 / F16 files, variants r1u2 … r4u1): K-quants
// are best at R = 2 with 2 units in flight, the 32-element and float formats at R = 1 with 2.
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

// Prefetches the weight bytes of rows [row, row + n) (the large parts of each layout).
template <ggml_type T>
__device__ __forceinline__ void prefetch_rows(const device_matrix& w, std::uint32_t row, std::uint32_t n) {
  const std::size_t nb = w.cols / (T == ggml_type::q4_k || T == ggml_type::q5_k || T == ggml_type::q6_k ? 256 : 32);
  const std::size_t first = static_cast<std::size_t>(row) * nb, count = static_cast<std::size_t>(n) * nb;
  if constexpr (T == ggml_type::q4_k) prefetch_l2(w.qs + first * 144, count * 144);
  else if constexpr (T == ggml_type::q5_k) prefetch_l2(w.qs + first * 176, count * 176);
  else if constexpr (T == ggml_type::q6_k) {
    prefetch_l2(w.qs + first * 192, count * 192);
    prefetch_l2(w.aux + first * 16, count * 16);
  } else if constexpr (T == ggml_type::q8_0) prefetch_l2(w.qs + first * 32, count * 32);
  else if constexpr (T == ggml_type::q4_0 || T == ggml_type::q5_0) prefetch_l2(w.qs + first * 16, count * 16);
  else if constexpr (T == ggml_type::f32) prefetch_l2(w.qs + static_cast<std::size_t>(row) * w.cols * 4, static_cast<std::size_t>(n) * w.cols * 4);
  else prefetch_l2(w.qs + static_cast<std::size_t>(row) * w.cols * 2, static_cast<std::size_t>(n) * w.cols * 2);
}

__device__ __forceinline__ mv_seg pick(const mv_params& p, int s) {
  return s == 0 ? p.seg[0] : (s == 1 ? p.seg[1] : p.seg[2]);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// silu(g) = g·σ(g), rounded like the CPU reference (cpu/ffn.cpp): g · (1 / (1 + e^-g)).
__device__ __forceinline__ float silu(float g) { return __fmul_rn(g, __fdiv_rn(1.0f, __fadd_rn(1.0f, expf(-g)))); }

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
  // Weights never depend on the previous kernel: start streaming this warp's rows into L2, then (when
  // launched as a programmatic dependent) wait for the producer of x / y before reading them.
  if (lane == 0) {
    const std::uint32_t n = min(static_cast<std::uint32_t>(R), w0.rows - row0);
    prefetch_rows<T>(w0, row0, n);
    if (SWIGLU) prefetch_rows<T>(w1, row0, n);
  }
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
  const std::uint32_t ncols = p.x.ncols;

  float acc[RR][NC];
#pragma unroll
  for (int r = 0; r < RR; ++r)
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[r][c] = 0.0f;

  for (std::uint32_t u0 = lane; u0 < nunits; u0 += 32 * UF) {
    typename U::w_t wr[UF][RR];
#pragma unroll
    for (int j = 0; j < UF; ++j) {
      const std::uint32_t u = u0 + 32 * j;
      if (u < nunits) {
#pragma unroll
        for (int r = 0; r < RR; ++r) {
          const std::uint32_t row = min(row0 + static_cast<std::uint32_t>(r % R), w0.rows - 1);  // clamp: result unused
          U::load_w(r < R ? w0 : w1, row, u, wr[j][r]);
        }
      }
    }
#pragma unroll
    for (int j = 0; j < UF; ++j) {
      const std::uint32_t u = u0 + 32 * j;
      if (u < nunits) {
#pragma unroll
        for (int c = 0; c < NC; ++c) {
          if (c < static_cast<int>(ncols)) {
            typename U::x_t xv;
            U::load_x(p.x, static_cast<std::uint32_t>(c), u, xv);
#pragma unroll
            for (int r = 0; r < RR; ++r) acc[r][c] = __fadd_rn(acc[r][c], U::dot(wr[j][r], xv));
          }
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < RR; ++r)
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[r][c] = warp_sum(acc[r][c]);

#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const std::uint32_t row = row0 + static_cast<std::uint32_t>(r);
      if (lane != ((r * NC + c) & 31) || row >= w0.rows || c >= static_cast<int>(ncols)) continue;
      float* y = sg.y + static_cast<std::size_t>(c) * sg.ldy + row;
      if (SWIGLU) {
        *y = __fmul_rn(silu(acc[r][c]), acc[r + R][c]);
      } else {
        float v = acc[r][c];
        if (sg.bias) v = __fadd_rn(v, sg.bias[row]);
        if (sg.accumulate) v = __fadd_rn(*y, v);
        *y = v;
      }
    }
}

// One warp per 32-element block of one column (two-level int8, q8_act.cuh).
__global__ void quantize_q8_kernel(const float* __restrict__ x, std::uint32_t ldx, std::uint32_t k,
                                   std::int8_t* __restrict__ hi, std::int8_t* __restrict__ lo, std::uint32_t ld_q8,
                                   float4* __restrict__ ds, std::uint32_t ld_ds) {
  // A programmatic dependent (the next matvec) may start now: it only prefetches weights until this grid
  // has completed (griddepcontrol.wait).
  asm volatile("griddepcontrol.launch_dependents;");
  const std::uint32_t c = blockIdx.y;
  const std::uint32_t blk = blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (blk * 32 >= k) return;
  const float v = x[static_cast<std::size_t>(c) * ldx + blk * 32 + lane];
  const std::size_t off = static_cast<std::size_t>(c) * ld_q8 + blk * 32;
  q8::quantize_block(v, lane, hi + off, lo + off, ds + static_cast<std::size_t>(c) * ld_ds + blk);
}

// --- tier 2: launchers -----------------------------------------------------------------------------

template <ggml_type T, int NC, bool SWIGLU, int RV = 0, int UV = 0>
void launch_nc(mv_params& p, cudaStream_t stream) {
  constexpr int R = RV ? RV : rows_per_warp<T, NC>();
  std::uint32_t blocks = 0;
  const int nseg = SWIGLU ? 1 : p.nseg;
  for (int s = 0; s < nseg; ++s) {
    p.seg[s].block_begin = blocks;
    const std::uint32_t groups = (p.seg[s].w.rows + R - 1) / R;
    blocks += (groups + k_warps - 1) / k_warps;
  }
  if (SWIGLU) p.seg[1].block_begin = 0;
  // Programmatic dependent launch: the kernel may start while its predecessor finishes; it prefetches
  // weights, then waits (griddepcontrol.wait) before touching the predecessor's outputs.
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(blocks);
  cfg.blockDim = dim3(k_threads);
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  WORKER_CUDA_CHECK(cudaLaunchKernelEx(&cfg, matvec_kernel<T, NC, SWIGLU, RV, UV>, p));
}

// Single-column tuning variants (WORKER_ORCD_MATVEC_VARIANT = r1u4 | r1u2 | r2u2 | r2u4 | r4u1), read
// once; for measuring on the card without rebuilding. Empty: the defaults.
int matvec_variant() {
  static const int v = [] {
    const char* e = std::getenv("WORKER_ORCD_MATVEC_VARIANT");
    const std::string s = e ? e : "";
    if (s == "r1u4") return 1;
    if (s == "r1u2") return 2;
    if (s == "r2u2") return 3;
    if (s == "r2u4") return 4;
    if (s == "r4u1") return 5;
    return 0;
  }();
  return v;
}

template <ggml_type T, bool SWIGLU>
bool launch_variant(mv_params& p, cudaStream_t stream) {
  if constexpr (T == ggml_type::q4_k || T == ggml_type::q6_k || T == ggml_type::q8_0 || T == ggml_type::f16) {
    switch (matvec_variant()) {
      case 1: launch_nc<T, 1, SWIGLU, 1, 4>(p, stream); return true;
      case 2: launch_nc<T, 1, SWIGLU, 1, 2>(p, stream); return true;
      case 3: launch_nc<T, 1, SWIGLU, 2, 2>(p, stream); return true;
      case 4: launch_nc<T, 1, SWIGLU, 2, 4>(p, stream); return true;
      case 5: launch_nc<T, 1, SWIGLU, 4, 1>(p, stream); return true;
      default: return false;
    }
  }
  return false;
}

template <ggml_type T, bool SWIGLU>
void launch_type(mv_params& p, cudaStream_t stream) {
  const std::uint32_t n = p.x.ncols;
  if (n <= 1 && launch_variant<T, SWIGLU>(p, stream)) return;
  if (n <= 1) launch_nc<T, 1, SWIGLU>(p, stream);
  else if (n <= 2) launch_nc<T, 2, SWIGLU>(p, stream);
  else if (n <= 4) launch_nc<T, 4, SWIGLU>(p, stream);
  else if (n <= 8) launch_nc<T, 8, SWIGLU>(p, stream);
  else launch_nc<T, 16, SWIGLU>(p, stream);
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

bool matvec_uses_q8(ggml_type type) {
  return type != ggml_type::f16 && type != ggml_type::bf16 && type != ggml_type::f32;
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
    p.seg[i] = {o.w, o.bias, o.y, o.ldy, o.accumulate ? 1 : 0, 0};
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
                 std::int8_t* lo, std::uint32_t ld_q8, float4* ds, std::uint32_t ld_ds, cudaStream_t stream) {
  require(k % 32 == 0 && ldx >= k && ld_q8 >= k && ld_ds >= k / 32 && ncols >= 1, "quantize_q8: bad shape");
  const std::uint32_t nblk = k / 32;
  dim3 grid((nblk + 3) / 4, ncols);
  quantize_q8_kernel<<<grid, 128, 0, stream>>>(x, ldx, k, hi, lo, ld_q8, ds, ld_ds);
  WORKER_CUDA_CHECK_LAUNCH("quantize_q8_kernel");
}

}  // namespace worker::gpu
