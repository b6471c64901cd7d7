// Kernels, launchers and typed entry of attention.cuh.
#include "gpu/attention.cuh"

#include <string>

#include "gpu/gpu_error.hpp"
#include "gpu/q8_act.cuh"

namespace worker::gpu {

namespace {

constexpr int k_threads = 128;
constexpr int k_warps = k_threads / 32;

// --- tier 1: kernels -------------------------------------------------------------------------------

template <int HD, int G>
__global__ void __launch_bounds__(k_threads) attn_split_kernel(const attention_args a) {
  const std::uint32_t j = blockIdx.x, g = blockIdx.y, i = blockIdx.z;
  const std::int32_t pos = a.query_pos[i];
  const std::uint32_t len = static_cast<std::uint32_t>(pos) + 1;
  const std::uint32_t start = j * a.split;
  if (start >= len) return;
  const std::uint32_t cnt = min(a.split, len - start);
  const kv_seq_desc seq = a.seqs[a.query_seq[i]];

  __shared__ float qs[G][HD];
  __shared__ float sc[G][k_attn_split_max];
  __shared__ float ms[G], ls[G];

  const float* q = a.q + static_cast<std::size_t>(i) * a.ldq + static_cast<std::size_t>(g) * G * HD;
  for (int t = threadIdx.x; t < G * HD; t += k_threads) qs[t / HD][t % HD] = q[t];
  __syncthreads();

  const __half* kp = kv_head_ptr(seq, a.layer, 0, g, a.n_head_kv, HD) + static_cast<std::size_t>(start) * HD;
  const __half* vp = kv_head_ptr(seq, a.layer, 1, g, a.n_head_kv, HD) + static_cast<std::size_t>(start) * HD;

  // Scores: one thread per key position, dot products in dimension order.
  for (std::uint32_t p = threadIdx.x; p < cnt; p += k_threads) {
    float acc[G];
#pragma unroll
    for (int h = 0; h < G; ++h) acc[h] = 0.0f;
    const uint4* kr = reinterpret_cast<const uint4*>(kp + static_cast<std::size_t>(p) * HD);
#pragma unroll 4
    for (int d0 = 0; d0 < HD; d0 += 8) {
      const uint4 raw = kr[d0 / 8];
      const __half2* h2 = reinterpret_cast<const __half2*>(&raw);
      float kf[8];
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float2 f = __half22float2(h2[e]);
        kf[2 * e] = f.x;
        kf[2 * e + 1] = f.y;
      }
#pragma unroll
      for (int h = 0; h < G; ++h)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[h] = __fmaf_rn(qs[h][d0 + e], kf[e], acc[h]);
    }
#pragma unroll
    for (int h = 0; h < G; ++h) sc[h][p] = __fmul_rn(acc[h], a.scale);
  }
  __syncthreads();

  // Per head: max, exp, sum (a warp per head, lanes over positions, fixed butterfly order).
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int h = warp; h < G; h += k_warps) {
    float m = -INFINITY;
    for (std::uint32_t p = lane; p < cnt; p += 32) m = fmaxf(m, sc[h][p]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float l = 0.0f;
    for (std::uint32_t p = lane; p < cnt; p += 32) {
      const float e = expf(sc[h][p] - m);
      sc[h][p] = e;
      l += e;
    }
    for (int o = 16; o > 0; o >>= 1) l += __shfl_xor_sync(0xffffffffu, l, o);
    if (lane == 0) {
      ms[h] = m;
      ls[h] = l;
    }
  }
  __syncthreads();

  // o = Σ_p e_p·v_p: one thread per dimension, positions in order.
  if (threadIdx.x < HD) {
    const int d = threadIdx.x;
    float o[G];
#pragma unroll
    for (int h = 0; h < G; ++h) o[h] = 0.0f;
    for (std::uint32_t p = 0; p < cnt; ++p) {
      const float v = __half2float(vp[static_cast<std::size_t>(p) * HD + d]);
#pragma unroll
      for (int h = 0; h < G; ++h) o[h] = __fmaf_rn(sc[h][p], v, o[h]);
    }
#pragma unroll
    for (int h = 0; h < G; ++h) {
      const std::size_t row = (static_cast<std::size_t>(i) * a.n_head + g * G + h) * a.max_splits + j;
      a.partial_o[row * HD + d] = o[h];
      if (d == 0) a.partial_ml[row] = make_float2(ms[h], ls[h]);
    }
  }
}

// Merges the splits of one (query, head): block of HD threads, one per dimension.
template <int HD>
__global__ void __launch_bounds__(HD) attn_merge_kernel(const attention_args a) {
  // A programmatic dependent (the next matvec) may start now: it only prefetches weights until this grid
  // has completed (griddepcontrol.wait).
  asm volatile("griddepcontrol.launch_dependents;");
  const std::uint32_t h = blockIdx.x, i = blockIdx.y;
  const int d = threadIdx.x;
  const std::uint32_t len = static_cast<std::uint32_t>(a.query_pos[i]) + 1;
  const std::uint32_t ns = attn_splits_for(len, a.split);
  if (ns > a.max_splits) __trap();  // the engine sizes max_splits from the largest capacity
  const std::size_t row0 = (static_cast<std::size_t>(i) * a.n_head + h) * a.max_splits;
  float M = -INFINITY;
  for (std::uint32_t j = 0; j < ns; ++j) M = fmaxf(M, a.partial_ml[row0 + j].x);
  float L = 0.0f, o = 0.0f;
  for (std::uint32_t j = 0; j < ns; ++j) {
    const float2 ml = a.partial_ml[row0 + j];
    const float w = expf(ml.x - M);
    L = __fmaf_rn(ml.y, w, L);
    o = __fmaf_rn(a.partial_o[(row0 + j) * HD + d], w, o);
  }
  const float y = __fdiv_rn(o, L);
  const std::uint32_t col = h * HD + d;
  if (a.out) a.out[static_cast<std::size_t>(i) * a.ldo + col] = y;
  if (a.out_f16) a.out_f16[static_cast<std::size_t>(i) * a.ld_f16 + col] = __float2half_rn(y);
  if (a.out_q8) {
    const std::size_t off = static_cast<std::size_t>(i) * a.ld_q8 + (col & ~31u);
    q8::quantize_block(y, d & 31, a.out_q8 + off, a.out_q8_lo + off, a.out_ds + static_cast<std::size_t>(i) * a.ld_ds + col / 32);
  }
}

// --- tier 2: launchers -----------------------------------------------------------------------------

template <int HD, int G>
void launch_hg(const attention_args& a, cudaStream_t s) {
  dim3 grid(a.max_splits, a.n_head_kv, a.nq);
  attn_split_kernel<HD, G><<<grid, k_threads, 0, s>>>(a);
  WORKER_CUDA_CHECK_LAUNCH("attn_split_kernel");
  attn_merge_kernel<HD><<<dim3(a.n_head, a.nq), HD, 0, s>>>(a);
  WORKER_CUDA_CHECK_LAUNCH("attn_merge_kernel");
}

template <int HD>
void launch_h(const attention_args& a, cudaStream_t s) {
  switch (a.n_head / a.n_head_kv) {
    case 1: launch_hg<HD, 1>(a, s); break;
    case 2: launch_hg<HD, 2>(a, s); break;
    case 4: launch_hg<HD, 4>(a, s); break;
    case 7: launch_hg<HD, 7>(a, s); break;
    case 8: launch_hg<HD, 8>(a, s); break;
    default: throw gpu_error(gpu_error_code::invalid_argument, "attention: unsupported GQA ratio");
  }
}

}  // namespace

// --- tier 3: typed entry ---------------------------------------------------------------------------

void attention(const attention_args& a, cudaStream_t stream) {
  auto require = [](bool ok, const char* what) {
    if (!ok) throw gpu_error(gpu_error_code::invalid_argument, std::string("attention: ") + what);
  };
  require(a.q && a.seqs && a.query_seq && a.query_pos && a.partial_o && a.partial_ml, "null pointer");
  require(a.n_head_kv > 0 && a.n_head % a.n_head_kv == 0, "n_head must be a multiple of n_head_kv");
  require(a.ldq >= a.n_head * a.head_dim, "bad ldq");
  require(a.max_splits > 0, "max_splits");
  require(a.split >= 1 && a.split <= k_attn_split_max, "split size");
  require(a.out || a.out_f16 || a.out_q8, "no output");
  require(!a.out_q8 || (a.out_ds && a.out_q8_lo), "q8 output needs lo and ds");
  if (a.nq == 0) return;
  if (a.head_dim == 128) launch_h<128>(a, stream);
  else if (a.head_dim == 64) launch_h<64>(a, stream);
  else if (a.head_dim == 32) launch_h<32>(a, stream);
  else require(false, "head_dim must be 32, 64 or 128");
}

}  // namespace worker::gpu
