// The streaming decode matvec kernel family (the math and the work split are in matvec.cuh): the same
// lane→unit assignment and addition order as the legacy and staged kernels (bit-identical results), but
// a persistent grid whose warps walk many row groups each and keep the cp.async pipeline full ACROSS
// rows, not only within one.
//
// Why: at the 7B shapes most matrices have K = 3584, i.e. 3–4 units per lane per row. The staged kernel
// gives each warp one row group, so a warp issues its whole row at once, waits one DRAM round trip,
// computes and exits, and the SM idles between short-lived blocks (ncu, H100: the fused gate/up kernel at
// 1.5 TB/s, the K = 3584 projections at 0.8–1.0 TB/s, while the output projection, 19008 blocks of the
// same code, reached 2.4 TB/s). Here step t of a warp is (its row group t / kmax, unit column t mod kmax)
// with kmax = ⌈units / 32⌉; the stages of the next rows are in flight while the current ones are used,
// and the grid is sized to what fits on the card at once.
//
// Shared memory per warp: S·RR spans (ring[slot][row][16-byte chunk], see span_layout).
#include <algorithm>
#include <mutex>

#include "gpu/matvec_common.cuh"
#include "gpu/matvec_units.cuh"

namespace worker::gpu::mvk {

namespace {

// Where a step's units lie: the 32 units u = 32k .. 32k + 31 of one row occupy whole blocks of the
// type's main array, contiguous in memory (units of a step start at a multiple of 32, and 32 is a
// multiple of the units per block). The warp copies that span with consecutive 16-byte cp.async per
// lane — every 32-byte sector requested once, by one instruction — and each lane then reads its unit's
// pieces from shared memory. (Copying each lane's own pieces instead splits a sector between pieces
// of different instructions, e.g. the halves of a Q4_K chunk or of a Q8_0 block, and every sector then
// reaches L2 twice: ncu, H100, session 3: L2 at 78 % of its throughput while DRAM ran at 47 %.)
template <ggml_type T>
struct span_layout {
  static constexpr int block_bytes = T == ggml_type::q4_k ? 144
                                     : T == ggml_type::q5_k ? 176
                                     : T == ggml_type::q6_k ? 192
                                     : T == ggml_type::q8_0 ? 32
                                                            : 16;  // Q4_0 / Q5_0 quants, float units
  static constexpr int units_per_block = T == ggml_type::q4_k || T == ggml_type::q6_k ? 4 : (T == ggml_type::q5_k ? 8 : 1);
  static constexpr int chunks = 32 / units_per_block * block_bytes / 16;  // 16-byte chunks of a full span
};

// Shared memory of one warp's ring: S slots of RR spans.
template <ggml_type T, bool SWIGLU, int R, int S>
constexpr int stream_warp_bytes() {
  return S * (SWIGLU ? 2 * R : R) * span_layout<T>::chunks * 16;
}
template <ggml_type T, bool SWIGLU, int R, int S>
constexpr bool stream_fits() {
  return stream_warp_bytes<T, SWIGLU, R, S>() <= 40 * 1024;
}

template <ggml_type T, bool SWIGLU, int R, int S>
struct stream_cfg {
  static_assert(stream_fits<T, SWIGLU, R, S>(), "ring of one warp too large for static shared memory");
  static constexpr int rr = SWIGLU ? 2 * R : R;
  static constexpr int warp_bytes = stream_warp_bytes<T, SWIGLU, R, S>();
  static constexpr int warps = 48 * 1024 / warp_bytes > 8 ? 8 : 48 * 1024 / warp_bytes;  // ≤ 48 KB static per block
};

// Row group g (R consecutive rows of one segment; SWIGLU: of gate and up) → its segment.
// mv_seg::block_begin holds the segment's first group index here.
__device__ __forceinline__ int segment_of(const mv_params& p, std::uint32_t g) {
  int s = 0;
  if (p.nseg > 1 && g >= p.seg[1].block_begin) s = 1;
  if (p.nseg > 2 && g >= p.seg[2].block_begin) s = 2;
  return s;
}

template <ggml_type T, int NC, bool SWIGLU, int R, int S>
__global__ void __launch_bounds__(stream_cfg<T, SWIGLU, R, S>::warps * 32)
    matvec_stream_kernel(const mv_params p, std::uint32_t total_groups) {
  using U = mv::unit<T>;
  using C = stream_cfg<T, SWIGLU, R, S>;
  using L = span_layout<T>;
  constexpr int RR = C::rr, NP = U::pieces, W = C::warps, CH = L::chunks;
  __shared__ uint4 ring[W][S][RR][CH];

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const std::uint32_t gw = blockIdx.x * W + static_cast<std::uint32_t>(warp), nw = gridDim.x * W;
  if (gw >= total_groups) return;  // the whole warp
  const std::uint32_t ngroups = (total_groups - 1 - gw) / nw + 1;  // this warp's groups: gw + nw·i
  const int nseg = SWIGLU ? 1 : p.nseg;
  const std::uint32_t nunits = U::count(p.seg[0].w.cols);  // every segment has the same K
  const std::uint32_t kmax = (nunits + 31) / 32;
  // This lane's units of a row: lane + 32·k for k < nk.
  const std::uint32_t nk = static_cast<std::uint32_t>(lane) < nunits ? (nunits - 1 - lane) / 32 + 1 : 0;
  // Where this lane's pieces lie in a span, in 16-byte chunks: the same for every row and step.
  int piece_at[NP];
  {
    const void* mine[NP];
    const void* first[NP];
    U::ptrs(p.seg[0].w, 0, static_cast<std::uint32_t>(lane), mine);
    U::ptrs(p.seg[0].w, 0, 0, first);
#pragma unroll
    for (int i = 0; i < NP; ++i)
      piece_at[i] = static_cast<int>((static_cast<const char*>(mine[i]) - static_cast<const char*>(first[0])) / 16);
  }
  typename U::small_t sm[S][RR];

  // The next step to issue: group index ii (of this warp), unit column ik.
  std::uint32_t ii = 0, ik = 0;
  auto issue = [&](int slot) {
    if (ii < ngroups) {
      const std::uint32_t g = gw + nw * ii;
      const int s = nseg > 1 ? segment_of(p, g) : 0;
      const mv_seg& sg = s == 0 ? p.seg[0] : (s == 1 ? p.seg[1] : p.seg[2]);
      const std::uint32_t row0 = (g - sg.block_begin) * R;
      const std::uint32_t u0 = 32 * ik, u = static_cast<std::uint32_t>(lane) + u0;
      const std::uint32_t step_units = min(32u, nunits - u0);
      const int nchunks = static_cast<int>((step_units + L::units_per_block - 1) / L::units_per_block) * L::block_bytes / 16;
#pragma unroll
      for (int r = 0; r < RR; ++r) {
        const device_matrix& w = SWIGLU && r >= R ? p.seg[1].w : sg.w;
        const std::uint32_t row = min(row0 + static_cast<std::uint32_t>(r % R), sg.w.rows - 1);  // clamp: result unused
        const void* start[NP];
        U::ptrs(w, row, u0, start);
        const uint4* src = static_cast<const uint4*>(start[0]);
#pragma unroll
        for (int c = lane; c < CH; c += 32)
          if (c < nchunks) cp_async16(&ring[warp][slot][r][c], src + c);
        if (u < nunits) sm[slot][r] = U::small(w, row, u);
      }
      if (++ik == kmax) {
        ik = 0;
        ++ii;
      }
    }
    cp_async_commit();  // one group per step, empty past the end: wait_group counts stay uniform
  };

#pragma unroll
  for (int j = 0; j < S - 1; ++j) issue(j);
  pdl_wait_and_release();  // weights never depend on the producer; x and y do
  const std::uint32_t ncols = p.x.ncols;

  float acc[RR][NC];
  clear(acc);

  std::uint32_t ci = 0, ck = 0;  // the step being consumed
  const std::uint32_t steps = ngroups * kmax;
  for (std::uint32_t t0 = 0; t0 < steps; t0 += S) {
#pragma unroll
    for (int j = 0; j < S; ++j) {
      __syncwarp();             // every lane has finished reading the slot about to be refilled
      issue((j + S - 1) % S);   // the slot consumed one step ago
      cp_async_wait<S - 1>();   // this lane's copies of step t0 + j have landed
      __syncwarp();             // ... and those of the other lanes (they copied parts of my units)
      if (t0 + static_cast<std::uint32_t>(j) < steps) {
        if (ck < nk) {
          const std::uint32_t u = static_cast<std::uint32_t>(lane) + 32 * ck;
          auto decode_row = [&](int r, typename U::w_t& w) {
            uint4 pc[NP];
#pragma unroll
            for (int i = 0; i < NP; ++i) pc[i] = ring[warp][j][r][piece_at[i]];
            U::decode(pc, sm[j][r], u, w);
          };
          if constexpr (NC == 1) {
            // One column: the activations first, then one decoded row at a time (fewer live registers).
            typename U::x_t xv;
            U::load_x(p.x, 0, u, xv);
#pragma unroll
            for (int r = 0; r < RR; ++r) {
              typename U::w_t w;
              decode_row(r, w);
              acc[r][0] = __fadd_rn(acc[r][0], U::dot(w, xv));
            }
          } else {
            typename U::w_t wr[RR];
#pragma unroll
            for (int r = 0; r < RR; ++r) decode_row(r, wr[r]);
            mv::add_unit<T>(wr, p.x, u, ncols, acc);
          }
        }
        if (++ck == kmax) {  // the group is complete: reduce, store, start the next one
          const std::uint32_t g = gw + nw * ci;
          const int s = nseg > 1 ? segment_of(p, g) : 0;
          const mv_seg& sg = s == 0 ? p.seg[0] : (s == 1 ? p.seg[1] : p.seg[2]);
          sum_lanes(acc);
          store_rows<R, NC, SWIGLU, RR>(sg, sg.w.rows, (g - sg.block_begin) * R, ncols, lane, acc);
          clear(acc);
          ck = 0;
          ++ci;
        }
      }
    }
  }
  cp_async_wait<0>();  // nothing may still be landing in shared memory when the block exits
}

// Resident blocks per SM × SMs of the current device (the occupancy query is not free: launch_rs caches
// it per kernel instantiation; a worker serves one device).
template <typename K>
std::uint32_t resident_blocks(K kernel, int threads) {
  int per_sm = 0;
  WORKER_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0));
  return static_cast<std::uint32_t>(std::max(1, per_sm)) * current_device_sms();
}

template <ggml_type T, int NC, bool SWIGLU, int R, int S>
void launch_rs(mv_params& p, bool pdl, cudaStream_t stream) {
  constexpr int W = stream_cfg<T, SWIGLU, R, S>::warps;
  std::uint32_t groups = 0;
  const int nseg = SWIGLU ? 1 : p.nseg;
  for (int s = 0; s < nseg; ++s) {
    p.seg[s].block_begin = groups;  // first group of the segment (see segment_of)
    groups += (p.seg[s].w.rows + R - 1) / R;
  }
  if (SWIGLU) p.seg[1].block_begin = 0;
  auto* kernel = matvec_stream_kernel<T, NC, SWIGLU, R, S>;
  static std::once_flag once;
  static std::uint32_t resident = 0;
  std::call_once(once, [&] { resident = resident_blocks(kernel, W * 32); });
  const std::uint32_t blocks = std::min((groups + W - 1) / W, resident);
  launch_maybe_pdl(kernel, dim3(blocks), dim3(W * 32), pdl, stream, p, groups);
}

template <ggml_type T>
constexpr bool tunable() {
  return T == ggml_type::q4_k || T == ggml_type::q6_k || T == ggml_type::q8_0 || T == ggml_type::f16;
}

// One-column configuration (rows per warp R, depth S) chosen at run time; false when the ring of that
// configuration does not fit in shared memory.
template <ggml_type T, bool SWIGLU, int R, int S>
bool launch_one_column(mv_params& p, bool pdl, cudaStream_t stream) {
  if constexpr (stream_fits<T, SWIGLU, R, S>()) {
    launch_rs<T, 1, SWIGLU, R, S>(p, pdl, stream);
    return true;
  }
  return false;
}
template <ggml_type T, bool SWIGLU, int R>
bool launch_depth(mv_params& p, bool pdl, cudaStream_t stream, int stages) {
  switch (stages) {
    case 2: return launch_one_column<T, SWIGLU, R, 2>(p, pdl, stream);
    case 6: return launch_one_column<T, SWIGLU, R, 6>(p, pdl, stream);
    case 4: return launch_one_column<T, SWIGLU, R, 4>(p, pdl, stream);
    case 8: return launch_one_column<T, SWIGLU, R, 8>(p, pdl, stream);
    default: return launch_one_column<T, SWIGLU, R, 3>(p, pdl, stream);
  }
}

}  // namespace

// Rows per warp and depth at one column, unless the str / sts variants say otherwise: 2 rows (every
// activation load serves both) and 3 stages (H100, session 3 run 6: Q4_K_M 355 tok/s at R = 2, S = 3
// vs 345-349 at S = 2 or 4 and 308 at R = 1; Q8_0 286 vs 276-282); 2 stages for batches (RR·NC
// accumulators to keep in registers).
template <ggml_type T, bool SWIGLU>
bool launch_stream(mv_params& p, bool pdl, cudaStream_t stream) {
  const std::uint32_t n = p.x.ncols;
  if (n <= 1) {
    if constexpr (tunable<T>()) {
      const mv_tuning& t = tuning();
      const int rows = t.stream_rows ? t.stream_rows : 2;
      const int stages = t.stream_stages ? t.stream_stages : 3;
      if (rows == 1 && launch_depth<T, SWIGLU, 1>(p, pdl, stream, stages)) return true;
      if (rows == 2 && launch_depth<T, SWIGLU, 2>(p, pdl, stream, stages)) return true;
    }
    launch_rs<T, 1, SWIGLU, 2, 3>(p, pdl, stream);
  } else if (n <= 2) {
    launch_rs<T, 2, SWIGLU, rows_per_warp<T, 2>(), 2>(p, pdl, stream);
  } else if (n <= 4) {
    launch_rs<T, 4, SWIGLU, rows_per_warp<T, 4>(), 2>(p, pdl, stream);
  } else {
    return false;
  }
  return true;
}

WORKER_MATVEC_LAUNCHERS(bool, launch_stream)

}  // namespace worker::gpu::mvk
