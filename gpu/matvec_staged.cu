// The staged decode matvec kernel family (the math and the work split are in matvec.cuh): the same
// lane→unit assignment and the same addition order as the legacy kernel of matvec.cu, so both give
// bit-identical results, but each unit's 16-byte weight pieces travel global → shared memory with
// cp.async, through a ring of S stages private to each lane, instead of into registers. A lane keeps
// (S−1)·RR·pieces·16 bytes in flight without spending registers on them, which is what the legacy kernel
// ran out of (ncu, run 7: 25 % occupancy at ~120 registers, warps waiting on loads ~60 % of the time).
// Weights never depend on the previous kernel, so the first S−1 stages are issued before the
// programmatic-dependent-launch wait: they overlap the tail of the producer of x.
//
// Shared memory per warp: S·RR·pieces·512 bytes (ring[slot][row][piece][lane], 16 bytes per lane:
// conflict-free); a block has as many warps (≤ 8) as fit in 48 KB of static shared memory.
#include "gpu/matvec_common.cuh"
#include "gpu/matvec_units.cuh"

namespace worker::gpu::mvk {

namespace {

template <ggml_type T, bool SWIGLU, int R, int S>
struct staged_cfg {
  static constexpr int rr = SWIGLU ? 2 * R : R;
  static constexpr int pieces = mv::unit<T>::pieces;
  static constexpr int warp_bytes = S * rr * pieces * 32 * 16;
  static_assert(warp_bytes <= 40 * 1024, "ring of one warp too large for static shared memory");
  static constexpr int warps = 48 * 1024 / warp_bytes > 8 ? 8 : 48 * 1024 / warp_bytes;
};

// Warp w of block b owns rows [R·g, R·g + R) of its segment, g = (b − block_begin)·warps + w (SWIGLU:
// gate rows and up rows, written as silu(gate)·up through segment 0's y).
template <ggml_type T, int NC, bool SWIGLU, int R, int S>
__global__ void __launch_bounds__(staged_cfg<T, SWIGLU, R, S>::warps * 32) matvec_staged_kernel(const mv_params p) {
  using U = mv::unit<T>;
  using C = staged_cfg<T, SWIGLU, R, S>;
  constexpr int RR = C::rr, NP = U::pieces, W = C::warps;
  __shared__ uint4 ring[W][S][RR][NP][32];

  int s = 0;
  if (!SWIGLU) {
    if (p.nseg > 1 && blockIdx.x >= p.seg[1].block_begin) s = 1;
    if (p.nseg > 2 && blockIdx.x >= p.seg[2].block_begin) s = 2;
  }
  const mv_seg sg = pick(p, s);
  const device_matrix w0 = sg.w;
  const device_matrix w1 = SWIGLU ? p.seg[1].w : sg.w;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const std::uint32_t group = (blockIdx.x - sg.block_begin) * W + static_cast<std::uint32_t>(warp);
  const std::uint32_t row0 = group * R;
  if (row0 >= w0.rows) return;  // the whole warp
  if (lane == 0 && p.prefetch) {
    const std::uint32_t n = min(static_cast<std::uint32_t>(R), w0.rows - row0);
    prefetch_rows<T>(w0, row0, n, prefetch_cap(p.prefetch));
    if (SWIGLU) prefetch_rows<T>(w1, row0, n, prefetch_cap(p.prefetch));
  }
  const std::uint32_t nunits = U::count(w0.cols);
  // This lane's units: lane + 32·k for k < nk.
  const std::uint32_t nk = static_cast<std::uint32_t>(lane) < nunits ? (nunits - 1 - lane) / 32 + 1 : 0;
  typename U::small_t sm[S][RR];

  // Stage k (this lane's unit lane + 32·k of all RR rows) into ring slot `slot`; one commit group per
  // stage, empty past the end, so that wait_group counts stay uniform.
  auto issue = [&](std::uint32_t k, int slot) {
    if (k < nk) {
      const std::uint32_t u = static_cast<std::uint32_t>(lane) + 32 * k;
#pragma unroll
      for (int r = 0; r < RR; ++r) {
        const device_matrix& w = r < R ? w0 : w1;
        const std::uint32_t row = min(row0 + static_cast<std::uint32_t>(r % R), w0.rows - 1);  // clamp: result unused
        const void* ptr[NP];
        U::ptrs(w, row, u, ptr);
#pragma unroll
        for (int i = 0; i < NP; ++i) cp_async16(&ring[warp][slot][r][i][lane], ptr[i]);
        sm[slot][r] = U::small(w, row, u);
      }
    }
    cp_async_commit();
  };

#pragma unroll
  for (int k = 0; k < S - 1; ++k) issue(static_cast<std::uint32_t>(k), k);
  pdl_wait_and_release();
  const std::uint32_t ncols = p.x.ncols;

  float acc[RR][NC];
  clear(acc);

  for (std::uint32_t k0 = 0; k0 < nk; k0 += S) {
#pragma unroll
    for (int j = 0; j < S; ++j) {
      const std::uint32_t k = k0 + static_cast<std::uint32_t>(j);
      issue(k + S - 1, (j + S - 1) % S);  // the slot consumed one step ago
      cp_async_wait<S - 1>();             // stage k has landed
      if (k < nk) {
        const std::uint32_t u = static_cast<std::uint32_t>(lane) + 32 * k;
        typename U::w_t wr[RR];
#pragma unroll
        for (int r = 0; r < RR; ++r) {
          uint4 pc[NP];
#pragma unroll
          for (int i = 0; i < NP; ++i) pc[i] = ring[warp][j][r][i][lane];
          U::decode(pc, sm[j][r], u, wr[r]);
        }
        mv::add_unit<T>(wr, p.x, u, ncols, acc);
      }
    }
  }

  sum_lanes(acc);
  store_rows<R, NC, SWIGLU, RR>(sg, w0.rows, row0, ncols, lane, acc);
}

template <ggml_type T, int NC, bool SWIGLU, int R, int S>
void launch_rs(mv_params& p, bool pdl, cudaStream_t stream) {
  constexpr int W = staged_cfg<T, SWIGLU, R, S>::warps;
  std::uint32_t blocks = 0;
  const int nseg = SWIGLU ? 1 : p.nseg;
  for (int s = 0; s < nseg; ++s) {
    p.seg[s].block_begin = blocks;
    const std::uint32_t groups = (p.seg[s].w.rows + R - 1) / R;
    blocks += (groups + W - 1) / W;
  }
  if (SWIGLU) p.seg[1].block_begin = 0;
  launch_kernel(matvec_staged_kernel<T, NC, SWIGLU, R, S>, blocks, W * 32, pdl, p, stream);
}

// The types of the benchmarked files get the single-column tuning variants.
template <ggml_type T>
constexpr bool tunable() {
  return T == ggml_type::q4_k || T == ggml_type::q6_k || T == ggml_type::q8_0 || T == ggml_type::f16;
}

}  // namespace

// Pipeline depth: 4 stages at one column (measured, docs/performance.md), 2 for batches (more
// arithmetic per weight byte, and RR·NC accumulators to keep in registers).
template <ggml_type T, bool SWIGLU>
void launch_staged(mv_params& p, bool pdl, cudaStream_t stream) {
  const std::uint32_t n = p.x.ncols;
  if (n <= 1) {
    constexpr int R = rows_per_warp<T, 1>();
    if constexpr (tunable<T>()) {
      const mv_tuning& t = tuning();
      if (t.rows == 1) return launch_rs<T, 1, SWIGLU, 1, 4>(p, pdl, stream);
      if (t.rows == 2) return launch_rs<T, 1, SWIGLU, 2, 4>(p, pdl, stream);
      switch (t.stages) {
        case 2: return launch_rs<T, 1, SWIGLU, R, 2>(p, pdl, stream);
        case 3: return launch_rs<T, 1, SWIGLU, R, 3>(p, pdl, stream);
        case 6: return launch_rs<T, 1, SWIGLU, R, 6>(p, pdl, stream);
        default: break;
      }
    }
    launch_rs<T, 1, SWIGLU, R, 4>(p, pdl, stream);
  } else if (n <= 2) {
    launch_rs<T, 2, SWIGLU, rows_per_warp<T, 2>(), 2>(p, pdl, stream);
  } else if (n <= 4) {
    launch_rs<T, 4, SWIGLU, rows_per_warp<T, 4>(), 2>(p, pdl, stream);
  } else if (n <= 8) {
    launch_rs<T, 8, SWIGLU, rows_per_warp<T, 8>(), 2>(p, pdl, stream);
  } else {
    launch_rs<T, 16, SWIGLU, rows_per_warp<T, 16>(), 2>(p, pdl, stream);
  }
}

WORKER_MATVEC_LAUNCHERS(void, launch_staged)

}  // namespace worker::gpu::mvk
