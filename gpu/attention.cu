// Kernels, launchers and typed entry of attention.cuh.
#include "gpu/attention.cuh"

#include <string>

#include "gpu/block_trace.cuh"
#include "gpu/gpu_error.hpp"
#include "gpu/launch.cuh"
#include "gpu/q8_act.cuh"

namespace worker::gpu {

namespace {

constexpr int k_threads = 128;
constexpr int k_warps = k_threads / 32;
constexpr int k_round = 32;  // key positions per round of a split block

// --- tier 1: kernels -------------------------------------------------------------------------------

// Max over a warp as one redux instruction (sm_80+) on an order-preserving integer image of the floats
// (non-negative floats keep their bits, negative ones get the magnitude bits flipped). Max is exact in
// any order, so this equals the shuffle butterfly it replaces (up to the sign of a zero maximum, which
// no later use can tell: it only enters as e^{x − max}); values are never NaN here.
__device__ __forceinline__ float warp_max(float v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const int b = __float_as_int(v);
  const int r = __reduce_max_sync(0xffffffffu, b >= 0 ? b : b ^ 0x7fffffff);
  return __int_as_float(r >= 0 ? r : r ^ 0x7fffffff);
#else
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
#endif
}

// Writes output column `col` of query i (the warp of 32 consecutive columns quantizes its block together
// for out_q8: lane = col mod 32).
__device__ __forceinline__ void write_out(const attention_args& a, std::uint32_t i, std::uint32_t col, float y) {
  if (a.out) a.out[static_cast<std::size_t>(i) * a.ldo + col] = y;
  if (a.out_f16) a.out_f16[static_cast<std::size_t>(i) * a.ld_f16 + col] = __float2half_rn(y);
  if (a.out_q8) {
    if (a.q8_sb_minor) {
      const std::size_t row = static_cast<std::size_t>(i) * a.ld_q8;
      q8::quantize_block_sb_minor(y, static_cast<int>(col & 31), a.out_q8 + row, a.out_q8_lo + row,
                                  a.out_ds + static_cast<std::size_t>(i) * a.ld_ds, col & ~31u,
                                  a.n_head * a.head_dim / 256);
      return;
    }
    const std::size_t off = static_cast<std::size_t>(i) * a.ld_q8 + (col & ~31u);
    q8::quantize_block(y, static_cast<int>(col & 31), a.out_q8 + off, a.out_q8_lo + off,
                       a.out_ds + static_cast<std::size_t>(i) * a.ld_ds + col / 32);
  }
}

// Merges the ns splits of (query i, head h) at dimension d: M = max m_j, L = Σ l_j·e^{m_j−M},
// out = Σ o_j·e^{m_j−M} / L, each sum in split order. Partials are read from L2 (__ldcg): in the fused
// merge other blocks of the same grid wrote them. (The fused merge's fallback for very long contexts.)
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

// Work split inside a split block (128 threads), in rounds of 32 key positions:
// - scores: 4 threads per key; thread r of a key takes the 16-byte chunks (8 dimensions) r, r+4, ...
//   of the key row, sums q·k over them in order for each head of the group, and the 4 partials are
//   added as (a0 + a1) + (a2 + a3) (xor shuffles; every order of that tree gives the same bits);
// - o = Σ_p e_p·v_p: thread (g = t / NCH, c = t mod NCH) takes chunk c of positions ≡ g mod PG (PG =
//   128 / NCH position groups) in increasing order, and the PG partials are added in group order.
// The K and V rows of two rounds are loaded into registers before any is used (and the next rounds
// while a round is computed), so a decode split of ≤ 64 keys costs one memory latency instead of one per
// key or dimension step. The order of every sum depends only on the split size, never on the batch,
// the grid or which path (fused RoPE / merge or not) runs.
template <int HD, int G>
__global__ void __launch_bounds__(k_threads) attn_split_kernel(const attention_args a) {
  constexpr int NCH = HD / 8;          // 16-byte chunks of a K/V row
  constexpr int CPT = HD / 32;         // chunks a thread loads per round (of one key; of CPT positions for V)
  constexpr int PG = k_threads / NCH;  // position groups of the o sum
  constexpr int QPT = (G * HD + k_threads - 1) / k_threads;  // query elements a thread stages
  static_assert(k_threads == 128 && k_round == 32 && PG * CPT == k_round, "work split assumes 128 threads");
  block_tracer bt;
  bt.begin();
  const std::uint32_t j = blockIdx.x, g = blockIdx.y, i = blockIdx.z;
  const int t = static_cast<int>(threadIdx.x);
  // Positions, sequence descriptors and the cached K/V rows of earlier positions are inputs of the
  // step (host copies before the first kernel, earlier steps), never written by the producer of q/k/v:
  // they are read before the programmatic-dependent wait, so that the K/V cache's DRAM round trip
  // overlaps the producer's tail. Only the split holding the query's own position (its row written by
  // the producer, or below by this block) is read after it.
  const std::int32_t pos = a.query_pos[i];
  const std::int32_t seq_index = a.query_seq[i];
  const std::uint32_t len = static_cast<std::uint32_t>(pos) + 1;
  const std::uint32_t start = j * a.split;
  if (a.early_trigger) asm volatile("griddepcontrol.launch_dependents;");
  if (start >= len) {
    bt.claim();
    asm volatile("griddepcontrol.wait;" ::: "memory");
    bt.waited();
    if (!a.early_trigger) asm volatile("griddepcontrol.launch_dependents;");
    bt.end(traced_kernel::attn_split);
    return;
  }
  const std::uint32_t cnt = min(a.split, len - start);
  const kv_seq_desc seq = a.seqs[seq_index];
  const uint4* kp = reinterpret_cast<const uint4*>(kv_head_ptr(seq, a.layer, 0, g, a.n_head_kv, HD) +
                                                   static_cast<std::size_t>(start) * HD);
  const uint4* vp = reinterpret_cast<const uint4*>(kv_head_ptr(seq, a.layer, 1, g, a.n_head_kv, HD) +
                                                   static_cast<std::size_t>(start) * HD);
  const int kq = t / 4, kr = t % 4;            // scores: key within the round, chunk residue
  const int vg = t / NCH, vc = t % NCH;        // o: position group, chunk
  const std::uint32_t rounds = (cnt + k_round - 1) / k_round;
  // Rows p < lim of round r (lim = cnt but for the first rounds of a block that computes its own row).
  auto load_k = [&](std::uint32_t r, uint4 (&buf)[CPT], std::uint32_t lim) {
    const std::uint32_t p = r * k_round + kq;
#pragma unroll
    for (int s = 0; s < CPT; ++s) buf[s] = p < lim ? kp[static_cast<std::size_t>(p) * NCH + kr + 4 * s] : make_uint4(0, 0, 0, 0);
  };
  auto load_v = [&](std::uint32_t r, uint4 (&buf)[CPT], std::uint32_t lim) {
#pragma unroll
    for (int m = 0; m < CPT; ++m) {
      const std::uint32_t p = r * k_round + vg + PG * m;
      buf[m] = p < lim ? vp[static_cast<std::size_t>(p) * NCH + vc] : make_uint4(0, 0, 0, 0);
    }
  };
  // The block whose split holds the query's own position (its last key, cnt − 1): without fused RoPE
  // it loads its first rounds after the wait (the producer, the RoPE + KV store kernel, wrote that
  // row); with fused RoPE it computes that row itself, so it loads the others before the wait like
  // every block and takes the own row's K and V (the fp16 values it stores) from shared memory — no
  // memory round trip after the wait on this block, the slowest of the grid.
  const bool holds_new = j == static_cast<std::uint32_t>(pos) / a.split;
  const bool own_row_here = holds_new && a.k_new && a.own_row_in_smem;
  uint4 kb[2][CPT], vb[2][CPT];
  auto load_first_rounds = [&](std::uint32_t lim) {
    load_k(0, kb[0], lim);
    load_v(0, vb[0], lim);
    if (rounds > 1) {
      load_k(1, kb[1], lim);
      load_v(1, vb[1], lim);
    }
  };
  if (!holds_new) load_first_rounds(cnt);
  else if (own_row_here) load_first_rounds(cnt - 1);
  // Fused RoPE: the (cos, sin) pair this thread needs — a table written at start-up, never by the
  // producer — before the wait. With 128 threads and half = HD / 2 dividing 128, every query pair a
  // thread rotates (u = t + 128·k) has the same dimension p = t mod half, and so has the new K pair
  // (p = t < half) of the block holding the new position: one pair a thread.
  constexpr int half = HD / 2;
  static_assert(HD <= k_threads && k_threads % half == 0, "one RoPE dimension per thread");
  float2 rope_cs = make_float2(0.0f, 0.0f);
  if (a.k_new) {
    if (pos >= seq.capacity || static_cast<std::uint32_t>(pos) >= a.table_positions) __trap();
    rope_cs = a.cos_sin[static_cast<std::size_t>(pos) * half + t % half];
  }
  // As a programmatic dependent (a.pdl): wait for the producer of q/k/v. Then (unless a.early_trigger
  // already did at the start) let the next kernel launch: it waits for this grid before reading its
  // outputs.
  bt.claim();
  asm volatile("griddepcontrol.wait;" ::: "memory");
  bt.waited();
  if (!a.early_trigger) asm volatile("griddepcontrol.launch_dependents;");
  const float* q = a.q + static_cast<std::size_t>(i) * a.ldq + static_cast<std::size_t>(g) * G * HD;
  // Unrotated path (q already rotated by rope_qk_store_kv): the query elements, staged through registers.
  float qv[QPT];
  if (!a.k_new) {
#pragma unroll
    for (int u = 0; u < QPT; ++u) qv[u] = t + u * k_threads < G * HD ? q[t + u * k_threads] : 0.0f;
  }

  __shared__ __align__(16) float qs[G][HD];
  __shared__ float sc[G][k_attn_split_max];
  __shared__ __align__(16) float red[PG][G][HD];  // o partials per position group; the fused merge reuses it
  __shared__ float ms[G], ls[G];
  __shared__ __align__(16) __half own_k[HD], own_v[HD];  // fused RoPE: the new position's K (rotated) and V

  if (a.k_new) {
    // RoPE NEOX fused in (attention_args::k_new); the same operations as rope.cu's kernel. Every
    // value written by the producer (this thread's query pairs and, in the block holding the new
    // position, its K pair and V element) is requested before any is used: one L2 round trip after
    // the wait instead of one per iteration of the rolled loop this replaces (up to three a thread;
    // H200 runs S20-1 … S20-3, batch 1: Q4_K_M +0.7 … +1.3 %, Q8_0 +0.4 … +0.8 %; docs/performance.md).
    constexpr int RPT = (G * half + k_threads - 1) / k_threads;  // query pairs a thread rotates
    const int p = t % half;
    float x0[RPT], x1[RPT];
#pragma unroll
    for (int k = 0; k < RPT; ++k) {
      const int u = t + k * k_threads, h = u / half;
      x0[k] = u < G * half ? q[h * HD + p] : 0.0f;
      x1[k] = u < G * half ? q[h * HD + p + half] : 0.0f;
    }
    const float* kn = a.k_new + static_cast<std::size_t>(i) * a.ldk + static_cast<std::size_t>(g) * HD;
    const float* vn = a.v_new + static_cast<std::size_t>(i) * a.ldv + static_cast<std::size_t>(g) * HD;
    const bool k_pair = holds_new && t < half, v_elem = holds_new && t < HD;
    const float k0 = k_pair ? kn[t] : 0.0f, k1 = k_pair ? kn[t + half] : 0.0f;
    const float vv = v_elem ? vn[t] : 0.0f;
    const float2 c = rope_cs;
#pragma unroll
    for (int k = 0; k < RPT; ++k) {
      const int u = t + k * k_threads, h = u / half;
      if (u < G * half) {
        qs[h][p] = __fsub_rn(__fmul_rn(x0[k], c.x), __fmul_rn(x1[k], c.y));
        qs[h][p + half] = __fadd_rn(__fmul_rn(x0[k], c.y), __fmul_rn(x1[k], c.x));
      }
    }
    if (holds_new) {
      // This block's split holds the new position: store its K (rotated) and V before reading them
      // (the __syncthreads below makes the stores visible to the block's loads).
      __half* kd = kv_head_ptr(seq, a.layer, 0, g, a.n_head_kv, HD) + static_cast<std::size_t>(pos) * HD;
      __half* vd = kv_head_ptr(seq, a.layer, 1, g, a.n_head_kv, HD) + static_cast<std::size_t>(pos) * HD;
      if (k_pair) {
        const __half r0 = __float2half_rn(__fsub_rn(__fmul_rn(k0, c.x), __fmul_rn(k1, c.y)));
        const __half r1 = __float2half_rn(__fadd_rn(__fmul_rn(k0, c.y), __fmul_rn(k1, c.x)));
        kd[t] = r0;
        kd[t + half] = r1;
        own_k[t] = r0;
        own_k[t + half] = r1;
      }
      if (v_elem) {
        const __half v = __float2half_rn(vv);
        vd[t] = v;
        own_v[t] = v;
      }
    }
    __syncthreads();
    if (own_row_here) {
      // The own row into the register buffers of its round (the last key of the split: round own / 32),
      // where the loads above left zeros. Later rounds (splits > 64 keys) load it from memory.
      const std::uint32_t own = cnt - 1, r = own / k_round, po = own % k_round;
      const uint4* ks = reinterpret_cast<const uint4*>(own_k);
      const uint4* vs = reinterpret_cast<const uint4*>(own_v);
      auto patch = [&](uint4 (&kbuf)[CPT], uint4 (&vbuf)[CPT]) {
        if (static_cast<std::uint32_t>(kq) == po) {
#pragma unroll
          for (int s = 0; s < CPT; ++s) kbuf[s] = ks[kr + 4 * s];
        }
#pragma unroll
        for (int m = 0; m < CPT; ++m) {
          if (static_cast<std::uint32_t>(vg + PG * m) == po) vbuf[m] = vs[vc];
        }
      };
      if (r == 0) patch(kb[0], vb[0]);
      else if (r == 1) patch(kb[1], vb[1]);
    }
  } else {
#pragma unroll
    for (int u = 0; u < QPT; ++u) {
      if (t + u * k_threads < G * HD) (&qs[0][0])[t + u * k_threads] = qv[u];
    }
  }

  if (holds_new && !own_row_here) load_first_rounds(cnt);  // after the wait (the producer stored the row)
  __syncthreads();  // qs

  // Scores of one round (block-uniform control flow: the shuffles need every lane).
  auto scores = [&](std::uint32_t r, const uint4 (&buf)[CPT]) {
    float acc[G];
#pragma unroll
    for (int h = 0; h < G; ++h) acc[h] = 0.0f;
#pragma unroll
    for (int s = 0; s < CPT; ++s) {
      const int c = kr + 4 * s;
      const __half2* h2 = reinterpret_cast<const __half2*>(&buf[s]);
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
        for (int e = 0; e < 8; ++e) acc[h] = __fmaf_rn(qs[h][8 * c + e], kf[e], acc[h]);
    }
    const std::uint32_t p = r * k_round + kq;
#pragma unroll
    for (int h = 0; h < G; ++h) {
      acc[h] = __fadd_rn(acc[h], __shfl_xor_sync(0xffffffffu, acc[h], 1));
      acc[h] = __fadd_rn(acc[h], __shfl_xor_sync(0xffffffffu, acc[h], 2));
      if (p < cnt && h % 4 == kr) sc[h][p] = __fmul_rn(acc[h], a.scale);
    }
  };
  for (std::uint32_t r0 = 0; r0 < rounds; r0 += 2) {
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      const std::uint32_t r = r0 + b;
      if (r < rounds) {
        scores(r, kb[b]);
        if (r + 2 < rounds) load_k(r + 2, kb[b], cnt);
      }
    }
  }
  __syncthreads();

  // Per head: max, exp, sum (a warp per head, lanes over positions, fixed butterfly order).
  const int lane = t & 31, warp = t >> 5;
  for (int h = warp; h < G; h += k_warps) {
    float m = -INFINITY;
    for (std::uint32_t p = lane; p < cnt; p += 32) m = fmaxf(m, sc[h][p]);
    m = warp_max(m);
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

  // o partials of this thread's position group and chunk.
  float o[G][8];
#pragma unroll
  for (int h = 0; h < G; ++h)
#pragma unroll
    for (int e = 0; e < 8; ++e) o[h][e] = 0.0f;
  auto accumulate = [&](std::uint32_t r, const uint4 (&buf)[CPT]) {
#pragma unroll
    for (int m = 0; m < CPT; ++m) {
      const std::uint32_t p = r * k_round + vg + PG * m;
      if (p < cnt) {
        const __half2* h2 = reinterpret_cast<const __half2*>(&buf[m]);
        float vf[8];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 f = __half22float2(h2[e]);
          vf[2 * e] = f.x;
          vf[2 * e + 1] = f.y;
        }
#pragma unroll
        for (int h = 0; h < G; ++h) {
          const float w = sc[h][p];
#pragma unroll
          for (int e = 0; e < 8; ++e) o[h][e] = __fmaf_rn(w, vf[e], o[h][e]);
        }
      }
    }
  };
  for (std::uint32_t r0 = 0; r0 < rounds; r0 += 2) {
#pragma unroll
    for (int b = 0; b < 2; ++b) {
      const std::uint32_t r = r0 + b;
      if (r < rounds) {
        accumulate(r, vb[b]);
        if (r + 2 < rounds) load_v(r + 2, vb[b], cnt);
      }
    }
  }
#pragma unroll
  for (int h = 0; h < G; ++h) {
    float4* dst = reinterpret_cast<float4*>(&red[vg][h][8 * vc]);
    dst[0] = make_float4(o[h][0], o[h][1], o[h][2], o[h][3]);
    dst[1] = make_float4(o[h][4], o[h][5], o[h][6], o[h][7]);
  }
  __syncthreads();
  for (int u = t; u < G * HD; u += k_threads) {
    const int h = u / HD, d = u % HD;
    float sum = red[0][h][d];
#pragma unroll
    for (int pg = 1; pg < PG; ++pg) sum = __fadd_rn(sum, red[pg][h][d]);
    const std::size_t row = (static_cast<std::size_t>(i) * a.n_head + g * G + h) * a.max_splits + j;
    a.partial_o[row * HD + d] = sum;
    if (d == 0) a.partial_ml[row] = make_float2(ms[h], ls[h]);
  }
  bt.end(traced_kernel::attn_split);
  if (a.merge_counters) {
    // The last of the group's ns split blocks to arrive merges (threadfence reduction). A single split
    // (short contexts) is its own last block: no counter round trip (its partials, written by this
    // block, are visible to it after the barrier).
    const std::uint32_t ns = attn_splits_for(len, a.split);
    if (ns > 1) {
      __shared__ unsigned ticket;
      __threadfence();
      __syncthreads();
      std::uint32_t* counter = a.merge_counters + static_cast<std::size_t>(i) * a.n_head_kv + g;
      if (threadIdx.x == 0) ticket = atomicAdd(counter, 1u);
      __syncthreads();
      if (ticket + 1 != ns) return;
      __threadfence();
      if (ns > a.max_splits) __trap();
      if (threadIdx.x == 0) *counter = 0;  // every block of the group has arrived
    } else {
      __syncthreads();
    }
    if (ns > k_attn_split_max) {  // very long contexts: one dimension per thread, head by head
      if (threadIdx.x < HD) {
        for (int h = 0; h < G; ++h) merge_head<HD>(a, i, g * G + h, static_cast<int>(threadIdx.x), ns);
      }
      return;
    }
    // The same arithmetic as merge_head, spread over the block: the G·ns (m, l) pairs are loaded at once
    // into shared memory (then sc holds the weights e^{m_j−M}), each sum in split order.
    // (m_j, l_j) of the group's heads, in the o-partial buffer (no longer needed: the barrier above).
    static_assert(sizeof(red) >= 2 * sizeof(float) * G * k_attn_split_max, "merge arrays must fit in red");
    auto mj = reinterpret_cast<float (*)[k_attn_split_max]>(&red[0][0][0]);
    auto lj = reinterpret_cast<float (*)[k_attn_split_max]>(&red[0][0][0] + G * k_attn_split_max);
    const std::size_t ml0 = (static_cast<std::size_t>(i) * a.n_head + g * G) * a.max_splits;
    for (std::uint32_t u = threadIdx.x; u < G * ns; u += k_threads) {
      const std::uint32_t h = u / ns, jj = u % ns;
      const float2 ml = __ldcg(a.partial_ml + ml0 + static_cast<std::size_t>(h) * a.max_splits + jj);
      mj[h][jj] = ml.x;
      lj[h][jj] = ml.y;
    }
    __syncthreads();
    for (int h = warp; h < G; h += k_warps) {
      float m = -INFINITY;
      for (std::uint32_t jj = lane; jj < ns; jj += 32) m = fmaxf(m, mj[h][jj]);
      m = warp_max(m);
      if (lane == 0) ms[h] = m;
    }
    __syncthreads();
    for (std::uint32_t u = threadIdx.x; u < G * ns; u += k_threads) {
      const std::uint32_t h = u / ns, jj = u % ns;
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

// Merges the splits of one (query, head): block of HD threads, one per dimension. The arithmetic of
// merge_head (M = max m_j; w_j = e^{m_j−M}; L and o summed in split order; out = o / L), laid out for
// latency: the first k_merge_chunk partial outputs of each thread and the (m, l) pair of split d are
// loaded at once, without waiting for the split count (rows < max_splits are in bounds; values of
// splits ≥ ns are never used), M is a block reduction (max is exact in any order), and the weights of
// each chunk of splits are computed once, in shared memory. One memory latency for up to
// k_merge_chunk splits (decode: contexts up to 1024 positions).
constexpr int k_merge_chunk = 16;

template <int HD>
__global__ void __launch_bounds__(HD) attn_merge_kernel(const attention_args a) {
  // The programmatic dependent (the next matvec) may start now (merge_trigger 0), after the wait (1) or
  // once the partials have landed (2, below): it only prefetches weights until this grid has completed
  // (griddepcontrol.wait).
  block_tracer bt;
  bt.begin();
  if (a.merge_trigger == 0) asm volatile("griddepcontrol.launch_dependents;");
  constexpr int W = HD / 32;
  const std::uint32_t h = blockIdx.x, i = blockIdx.y;
  const int d = static_cast<int>(threadIdx.x);
  const std::size_t row0 = (static_cast<std::size_t>(i) * a.n_head + h) * a.max_splits;
  // Launched as a programmatic dependent of the split kernel with a.pdl: its partials are read after this.
  bt.claim();
  asm volatile("griddepcontrol.wait;" ::: "memory");
  bt.waited();
  if (a.merge_trigger == 1) asm volatile("griddepcontrol.launch_dependents;");
  float ov[k_merge_chunk];
#pragma unroll
  for (int u = 0; u < k_merge_chunk; ++u) {
    ov[u] = static_cast<std::uint32_t>(u) < a.max_splits ? __ldcg(a.partial_o + (row0 + u) * HD + d) : 0.0f;
  }
  const float2 mld = static_cast<std::uint32_t>(d) < a.max_splits ? __ldcg(a.partial_ml + row0 + d) : make_float2(0.0f, 0.0f);
  const std::uint32_t len = static_cast<std::uint32_t>(a.query_pos[i]) + 1;
  const std::uint32_t ns = attn_splits_for(len, a.split);
  if (ns > a.max_splits) __trap();  // the engine sizes max_splits from the largest capacity
  float m = static_cast<std::uint32_t>(d) < ns ? mld.x : -INFINITY;
  for (std::uint32_t jj = d + HD; jj < ns; jj += HD) m = fmaxf(m, __ldcg(a.partial_ml + row0 + jj).x);
  m = warp_max(m);
  __shared__ float wm[W];
  __shared__ float ws[k_merge_chunk], lsh[k_merge_chunk];
  if ((d & 31) == 0) wm[d >> 5] = m;
  __syncthreads();
  float M = wm[0];
#pragma unroll
  for (int w = 1; w < W; ++w) M = fmaxf(M, wm[w]);
  if (a.merge_trigger == 2) asm volatile("griddepcontrol.launch_dependents;");
  float L = 0.0f, o = 0.0f;
  for (std::uint32_t j0 = 0; j0 < ns; j0 += k_merge_chunk) {
    if (j0 > 0) {
      __syncthreads();  // the previous chunk's weights are used
#pragma unroll
      for (int u = 0; u < k_merge_chunk; ++u) {
        ov[u] = j0 + u < ns ? __ldcg(a.partial_o + (row0 + j0 + u) * HD + d) : 0.0f;
      }
    }
    if (d < k_merge_chunk && j0 + d < ns) {
      const float2 ml = j0 == 0 ? mld : __ldcg(a.partial_ml + row0 + j0 + d);
      ws[d] = expf(ml.x - M);
      lsh[d] = ml.y;
    }
    __syncthreads();
#pragma unroll
    for (int u = 0; u < k_merge_chunk; ++u) {
      if (j0 + u < ns) {
        L = __fmaf_rn(lsh[u], ws[u], L);
        o = __fmaf_rn(ov[u], ws[u], o);
      }
    }
  }
  write_out(a, i, h * HD + static_cast<std::uint32_t>(d), __fdiv_rn(o, L));
  bt.end(traced_kernel::attn_merge);
}

// --- tier 2: launchers -----------------------------------------------------------------------------

template <int HD, int G>
void launch_hg(const attention_args& a, cudaStream_t s) {
  launch_maybe_pdl(attn_split_kernel<HD, G>, dim3(a.max_splits, a.n_head_kv, a.nq), dim3(k_threads), a.pdl, s, a);
  if (a.merge_counters) return;
  launch_maybe_pdl(attn_merge_kernel<HD>, dim3(a.n_head, a.nq), dim3(HD), a.pdl, s, a);
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
  require(!a.q8_sb_minor || (a.out_q8 && a.nq == 1 && a.n_head * a.head_dim % 256 == 0),
          "superblock-minor q8 output: one query, n_head·head_dim a multiple of 256");
  require(!a.k_new || (a.v_new && a.cos_sin && a.ldk >= a.n_head_kv * a.head_dim && a.ldv >= a.n_head_kv * a.head_dim),
          "fused RoPE needs v_new, cos_sin and K/V strides");
  if (a.nq == 0) return;
  if (a.head_dim == 128) launch_h<128>(a, stream);
  else if (a.head_dim == 64) launch_h<64>(a, stream);
  else if (a.head_dim == 32) launch_h<32>(a, stream);
  else require(false, "head_dim must be 32, 64 or 128");
}

}  // namespace worker::gpu
