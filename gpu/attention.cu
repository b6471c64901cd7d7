// Kernels, launchers and typed entry of attention.cuh.
#include "gpu/attention.cuh"

#include <string>

#include "gpu/gpu_error.hpp"
#include "gpu/launch.cuh"
#include "gpu/q8_act.cuh"

namespace worker::gpu {

namespace {

constexpr int k_threads = 128;
constexpr int k_warps = k_threads / 32;

// --- tier 1: kernels -------------------------------------------------------------------------------

// Merges the ns splits of (query i, head h) at dimension d and writes the outputs (the warp of 32
// consecutive d's quantizes its block together for out_q8). Partials are read from L2 (__ldcg): in the
// fused merge other blocks of the same grid wrote them.
// Writes output column `col` of query i (the warp of 32 consecutive columns quantizes its block together
// for out_q8: lane = col mod 32).
__device__ __forceinline__ void write_out(const attention_args& a, std::uint32_t i, std::uint32_t col, float y) {
  if (a.out) a.out[static_cast<std::size_t>(i) * a.ldo + col] = y;
  if (a.out_f16) a.out_f16[static_cast<std::size_t>(i) * a.ld_f16 + col] = __float2half_rn(y);
  if (a.out_q8) {
    const std::size_t off = static_cast<std::size_t>(i) * a.ld_q8 + (col & ~31u);
    q8::quantize_block(y, static_cast<int>(col & 31), a.out_q8 + off, a.out_q8_lo + off,
                       a.out_ds + static_cast<std::size_t>(i) * a.ld_ds + col / 32);
  }
}

// Merges the ns splits of (query i, head h) at dimension d: M = max m_j, L = Σ l_j·e^{m_j−M},
// out = Σ o_j·e^{m_j−M} / L, each sum in split order. Partials are read from L2 (__ldcg).
template <int HD>
__device__ __forceinline__ void merge_head(const attention_args& a, std::uint32_t i, std::uint32_t h, int d, std::uint32_t ns) {
  const std::size_t row0 = (static_cast<std::size_t>(i) * a.n_head + h) * a.max_splits;
  float M = -INFINITY;
  for (std::uint32_t j = 0; j < ns; ++j) M = fmaxf(M, __ldcg(a.partial_ml + row0 + j).x);
  float L = 0.0f, o = 0.0f;
  for (std::uint32_t j = 0; j < ns; ++j) {
    const float2 ml = __ldcg(a.partial_ml + row0 + j);
    const float w = expf(ml.x - M);
    L = __fmaf_rn(ml.y, w, L);
    o = __fmaf_rn(__ldcg(a.partial_o + (row0 + j) * HD + d), w, o);
  }
  write_out(a, i, h * HD + static_cast<std::uint32_t>(d), __fdiv_rn(o, L));
}

template <int HD, int G>
__global__ void __launch_bounds__(k_threads) attn_split_kernel(const attention_args a) {
  // As a programmatic dependent (a.pdl): wait for the producer of q/k/v. Then let the next kernel's
  // blocks start their weight loads (they wait for this grid before reading its outputs).
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;");
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
  if (a.k_new) {
    // RoPE NEOX fused in (attention_args::k_new); the same operations as rope.cu's kernel.
    if (pos >= seq.capacity || static_cast<std::uint32_t>(pos) >= a.table_positions) __trap();
    constexpr int half = HD / 2;
    const float2* cs = a.cos_sin + static_cast<std::size_t>(pos) * half;
    for (int t = threadIdx.x; t < G * half; t += k_threads) {
      const int h = t / half, p = t % half;
      const float x0 = q[h * HD + p], x1 = q[h * HD + p + half];
      const float2 c = cs[p];
      qs[h][p] = __fsub_rn(__fmul_rn(x0, c.x), __fmul_rn(x1, c.y));
      qs[h][p + half] = __fadd_rn(__fmul_rn(x0, c.y), __fmul_rn(x1, c.x));
    }
    if (j == static_cast<std::uint32_t>(pos) / a.split) {
      // This block's split holds the new position: store its K (rotated) and V before reading them.
      const float* kn = a.k_new + static_cast<std::size_t>(i) * a.ldk + static_cast<std::size_t>(g) * HD;
      const float* vn = a.v_new + static_cast<std::size_t>(i) * a.ldv + static_cast<std::size_t>(g) * HD;
      __half* kd = kv_head_ptr(seq, a.layer, 0, g, a.n_head_kv, HD) + static_cast<std::size_t>(pos) * HD;
      __half* vd = kv_head_ptr(seq, a.layer, 1, g, a.n_head_kv, HD) + static_cast<std::size_t>(pos) * HD;
      for (int p = threadIdx.x; p < half; p += k_threads) {
        const float x0 = kn[p], x1 = kn[p + half];
        const float2 c = cs[p];
        kd[p] = __float2half_rn(__fsub_rn(__fmul_rn(x0, c.x), __fmul_rn(x1, c.y)));
        kd[p + half] = __float2half_rn(__fadd_rn(__fmul_rn(x0, c.y), __fmul_rn(x1, c.x)));
      }
      for (int d = threadIdx.x; d < HD; d += k_threads) vd[d] = __float2half_rn(vn[d]);
    }
  } else {
    for (int t = threadIdx.x; t < G * HD; t += k_threads) qs[t / HD][t % HD] = q[t];
  }
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
  if (a.merge_counters) {
    // The last of the group's ns split blocks to arrive merges (threadfence reduction).
    __shared__ unsigned ticket;
    __threadfence();
    __syncthreads();
    std::uint32_t* counter = a.merge_counters + static_cast<std::size_t>(i) * a.n_head_kv + g;
    if (threadIdx.x == 0) ticket = atomicAdd(counter, 1u);
    __syncthreads();
    const std::uint32_t ns = attn_splits_for(len, a.split);
    if (ticket + 1 != ns) return;
    __threadfence();
    if (ns > a.max_splits) __trap();
    if (threadIdx.x == 0) *counter = 0;  // every block of the group has arrived
    if (ns > k_attn_split_max) {  // very long contexts: one dimension per thread, head by head
      if (threadIdx.x < HD) {
        for (int h = 0; h < G; ++h) merge_head<HD>(a, i, g * G + h, static_cast<int>(threadIdx.x), ns);
      }
      return;
    }
    // The same arithmetic as merge_head, spread over the block: the G·ns (m, l) pairs are loaded at once
    // into shared memory (then sc holds the weights e^{m_j−M}), each sum in split order.
    __shared__ float mj[G][k_attn_split_max], lj[G][k_attn_split_max];
    const std::size_t ml0 = (static_cast<std::size_t>(i) * a.n_head + g * G) * a.max_splits;
    for (std::uint32_t t = threadIdx.x; t < G * ns; t += k_threads) {
      const std::uint32_t h = t / ns, jj = t % ns;
      const float2 ml = __ldcg(a.partial_ml + ml0 + static_cast<std::size_t>(h) * a.max_splits + jj);
      mj[h][jj] = ml.x;
      lj[h][jj] = ml.y;
    }
    __syncthreads();
    for (int h = warp; h < G; h += k_warps) {
      float m = -INFINITY;
      for (std::uint32_t jj = lane; jj < ns; jj += 32) m = fmaxf(m, mj[h][jj]);
      for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
      if (lane == 0) ms[h] = m;
    }
    __syncthreads();
    for (std::uint32_t t = threadIdx.x; t < G * ns; t += k_threads) {
      const std::uint32_t h = t / ns, jj = t % ns;
      sc[h][jj] = expf(mj[h][jj] - ms[h]);
    }
    __syncthreads();
    if (threadIdx.x < G) {
      float L = 0.0f;
      for (std::uint32_t jj = 0; jj < ns; ++jj) L = __fmaf_rn(lj[threadIdx.x][jj], sc[threadIdx.x][jj], L);
      ls[threadIdx.x] = L;
    }
    __syncthreads();
    if (threadIdx.x < HD) {
      const int d = threadIdx.x;
      float o[G];
#pragma unroll
      for (int h = 0; h < G; ++h) o[h] = 0.0f;
#pragma unroll 4
      for (std::uint32_t jj = 0; jj < ns; ++jj) {
#pragma unroll
        for (int h = 0; h < G; ++h)
          o[h] = __fmaf_rn(__ldcg(a.partial_o + (ml0 + static_cast<std::size_t>(h) * a.max_splits + jj) * HD + d), sc[h][jj], o[h]);
      }
#pragma unroll
      for (int h = 0; h < G; ++h) write_out(a, i, (g * G + h) * HD + static_cast<std::uint32_t>(d), __fdiv_rn(o[h], ls[h]));
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
  const std::uint32_t len = static_cast<std::uint32_t>(a.query_pos[i]) + 1;
  const std::uint32_t ns = attn_splits_for(len, a.split);
  if (ns > a.max_splits) __trap();  // the engine sizes max_splits from the largest capacity
  merge_head<HD>(a, i, h, static_cast<int>(threadIdx.x), ns);
}

// --- tier 2: launchers -----------------------------------------------------------------------------

template <int HD, int G>
void launch_hg(const attention_args& a, cudaStream_t s) {
  launch_maybe_pdl(attn_split_kernel<HD, G>, dim3(a.max_splits, a.n_head_kv, a.nq), dim3(k_threads), a.pdl, s, a);
  if (a.merge_counters) return;
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
  require(!a.k_new || (a.v_new && a.cos_sin && a.ldk >= a.n_head_kv * a.head_dim && a.ldv >= a.n_head_kv * a.head_dim),
          "fused RoPE needs v_new, cos_sin and K/V strides");
  if (a.nq == 0) return;
  if (a.head_dim == 128) launch_h<128>(a, stream);
  else if (a.head_dim == 64) launch_h<64>(a, stream);
  else if (a.head_dim == 32) launch_h<32>(a, stream);
  else require(false, "head_dim must be 32, 64 or 128");
}

}  // namespace worker::gpu
