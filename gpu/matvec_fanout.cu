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
// move); slower for Q4_K_M (−4 … −7 %), whose K-quants keep the streaming kernel.
#include <algorithm>

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
};

// Local row lr of a block: gate rows [0, BR), then (SWIGLU) up rows [BR, 2·BR), of output rows row0 + lr mod BR.
// (By value: a reference that may name either a kernel parameter or a local puts the local on the stack.)
template <bool SWIGLU>
__device__ __forceinline__ device_matrix local_matrix(const mv_params& p, const mv_seg& sg, std::uint32_t lr,
                                                      std::uint32_t br) {
  return SWIGLU && lr >= br ? p.seg[1].w : sg.w;
}

// Register budget: 85 per thread (3 blocks per SM) for tasks of up to two units, 128 (2 blocks) for
// larger ones, whose pieces in flight would otherwise spill.
template <int RT, int UT>
constexpr int fan_min_blocks() {
  return RT * UT >= 4 ? 2 : k_fan_blocks_per_sm;
}

template <ggml_type T, bool SWIGLU, int RT, int UT>
__global__ void __launch_bounds__(k_fan_threads, (fan_min_blocks<RT, UT>()))
    matvec_fanout_kernel(const mv_params p, const fan_geometry g) {
  using U = mv::unit<T>;
  constexpr int NP = U::pieces;
  extern __shared__ float dots[];  // [local row][unit]

  int s = 0;
  if (!SWIGLU) {
    if (p.nseg > 1 && blockIdx.x >= p.seg[1].block_begin) s = 1;
    if (p.nseg > 2 && blockIdx.x >= p.seg[2].block_begin) s = 2;
  }
  const mv_seg sg = pick(p, s);
  const std::uint32_t br = g.block_rows, nunits = g.nunits, rows = sg.w.rows;
  const std::uint32_t ngroups = (nunits + UT - 1) / UT;  // unit groups of a row
  const std::uint32_t row0 = (blockIdx.x - sg.block_begin) * br;

  // A task: units UT·j … UT·j + UT − 1 of local rows RT·q … RT·q + RT − 1, all their weight pieces
  // requested before any is used (bytes in flight per thread); the activations of a unit serve the RT rows.
  struct raw_t {
    uint4 pc[UT][RT][NP];
    typename U::small_t sm[UT][RT];
  };
  auto load = [&](std::uint32_t t, raw_t& raw) {
    const std::uint32_t q = t / ngroups, u0 = (t - q * ngroups) * UT;
#pragma unroll
    for (int c = 0; c < UT; ++c) {
      const std::uint32_t u = min(u0 + static_cast<std::uint32_t>(c), nunits - 1);  // clamp: result unused
#pragma unroll
      for (int i = 0; i < RT; ++i) {
        const std::uint32_t lr = q * RT + static_cast<std::uint32_t>(i);
        const device_matrix w = local_matrix<SWIGLU>(p, sg, lr, br);
        const std::uint32_t row = min(row0 + lr % br, rows - 1);  // clamp: result unused
        const void* ptr[NP];
        U::ptrs(w, row, u, ptr);
#pragma unroll
        for (int k = 0; k < NP; ++k) raw.pc[c][i][k] = blocks::ld16(ptr[k]);
        raw.sm[c][i] = U::small(w, row, u);
      }
    }
  };
  auto compute = [&](std::uint32_t t, const raw_t& raw) {
    const std::uint32_t q = t / ngroups, u0 = (t - q * ngroups) * UT;
#pragma unroll
    for (int c = 0; c < UT; ++c) {
      const std::uint32_t u = u0 + static_cast<std::uint32_t>(c);
      if (UT > 1 && u >= nunits) break;
      typename U::x_t xv;
      U::load_x(p.x, 0, u, xv);
#pragma unroll
      for (int i = 0; i < RT; ++i) {
        typename U::w_t w;
        U::decode(raw.pc[c][i], raw.sm[c][i], u, w);
        dots[(q * RT + static_cast<std::uint32_t>(i)) * nunits + u] = U::dot(w, xv);
      }
    }
  };

  // Weights never depend on the producer of x and y (programmatic dependent launch): the first task's
  // pieces are requested before the wait.
  std::uint32_t t = threadIdx.x;
  raw_t raw;
  if (t < g.tasks) load(t, raw);
  pdl_wait_and_release();
  while (t < g.tasks) {
    compute(t, raw);
    t += blockDim.x;
    if (t < g.tasks) load(t, raw);
  }
  __syncthreads();

  // Row r's sum in the order of every family: lane l adds 0, then units l, l+32, …; the butterfly.
  const int lane = threadIdx.x & 31;
  auto row_sum = [&](std::uint32_t lr) {
    float acc = 0.0f;
    for (std::uint32_t u = static_cast<std::uint32_t>(lane); u < nunits; u += 32) acc = __fadd_rn(acc, dots[lr * nunits + u]);
    return warp_sum(acc);
  };
  for (std::uint32_t r = threadIdx.x >> 5; r < br && row0 + r < rows; r += blockDim.x >> 5) {
    const float a = row_sum(r);
    const float b = SWIGLU ? row_sum(br + r) : 0.0f;
    if (lane == 0) store_one<SWIGLU>(sg, row0 + r, 0, a, b);
  }
}

// block_rows rows per block (a multiple of RT, lowered until a block's dots fit in shared memory);
// false when not even RT rows fit (a very long row: the caller falls back to another family).
template <ggml_type T, bool SWIGLU, int RT, int UT>
bool launch_rt(mv_params& p, bool pdl, cudaStream_t stream, int block_rows) {
  const std::uint32_t nunits = mv::unit<T>::count(p.seg[0].w.cols);
  const std::uint32_t ngroups = (nunits + UT - 1) / UT;
  const std::uint32_t local_per_row = SWIGLU ? 2 : 1;
  auto smem_of = [&](std::uint32_t br) { return static_cast<std::size_t>(br) * local_per_row * nunits * sizeof(float); };
  std::uint32_t br = std::max(static_cast<std::uint32_t>(block_rows) / RT * RT, static_cast<std::uint32_t>(RT));
  while (br > static_cast<std::uint32_t>(RT) && smem_of(br) > k_fan_max_smem) br -= RT;
  if (smem_of(br) > k_fan_max_smem) return false;
  const fan_geometry g{br, nunits, br * local_per_row / RT * ngroups};
  std::uint32_t blocks = 0;
  const int nseg = SWIGLU ? 1 : p.nseg;
  for (int s = 0; s < nseg; ++s) {
    p.seg[s].block_begin = blocks;
    blocks += (p.seg[s].w.rows + br - 1) / br;
  }
  if (SWIGLU) p.seg[1].block_begin = 0;
  // With ftrim, a block whose tasks fit in one round gets as many warps as they need (no idle warp
  // holding registers that another block could use).
  const std::uint32_t threads =
      tuning().fanout_trim == 1 ? std::min<std::uint32_t>(k_fan_threads, (g.tasks + 31) / 32 * 32) : k_fan_threads;
  launch_maybe_pdl_shared(matvec_fanout_kernel<T, SWIGLU, RT, UT>, dim3(blocks), dim3(threads), smem_of(br), pdl,
                          stream, p, g);
  return true;
}

template <ggml_type T>
constexpr bool tunable() {
  return T == ggml_type::q4_k || T == ggml_type::q6_k || T == ggml_type::q8_0 || T == ggml_type::f16;
}

// Per-type defaults (H100, session 6 runs S6-2/3/6, against the variants fu1/fu2/fu4, ft1/ft2/ft4,
// fb2…fb32 and ftrim): F16 four rows and one unit per task in blocks of 4 rows (187 tok/s; two rows ×
// two units 181, × one unit 178; one row 155–175); the others two rows and one unit per task in
// blocks of 4 rows (Q8_0: 300–302 tok/s; 282 with 2 rows, 298 with 8, 282 with 16, 250 with 32; four
// rows per task 293–299). Rows per task share the activation loads of a unit. (The K-quants keep the
// streaming kernel: Q4_K_M 323–347 tok/s here with two rows per task vs 360–364; with four rows per
// task in trimmed blocks, `ft4,ftrim`, 366–368 in runs S6-6/8 — not yet made the default.)
template <ggml_type T>
constexpr int default_task_rows() {
  return T == ggml_type::f16 ? 4 : 2;
}
constexpr int k_default_block_rows = 4;

}  // namespace

template <ggml_type T, bool SWIGLU>
bool launch_fanout(mv_params& p, bool pdl, cudaStream_t stream) {
  if (p.x.ncols != 1) return false;
  const mv_tuning& t = tuning();
  const int rows = t.fanout_rows ? t.fanout_rows : k_default_block_rows;
  if constexpr (tunable<T>()) {
    using launcher = bool (*)(mv_params&, bool, cudaStream_t, int);
    const int rt = t.fanout_task_rows ? t.fanout_task_rows : default_task_rows<T>();
    const int ut = t.fanout_task_units ? t.fanout_task_units : 1;
    const launcher chosen =
        rt == 4   ? launch_rt<T, SWIGLU, 4, 1>
        : rt == 1 ? (ut == 4 ? launch_rt<T, SWIGLU, 1, 4> : ut == 2 ? launch_rt<T, SWIGLU, 1, 2> : launch_rt<T, SWIGLU, 1, 1>)
                  : (ut == 4 ? launch_rt<T, SWIGLU, 2, 4> : ut == 2 ? launch_rt<T, SWIGLU, 2, 2> : launch_rt<T, SWIGLU, 2, 1>);
    return chosen(p, pdl, stream, rows);
  }
  return launch_rt<T, SWIGLU, 2, 1>(p, pdl, stream, rows);
}

WORKER_MATVEC_LAUNCHERS(bool, launch_fanout)

}  // namespace worker::gpu::mvk
