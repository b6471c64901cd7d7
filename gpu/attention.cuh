// Causal GQA attention over the fp16 KV cache, split along the key axis (flash-decoding), used for both
// decode (one query per sequence) and prefill (every prompt position is a query).
//
// Query i (sequence seqs[query_seq[i]], position p = query_pos[i]) attends keys 0..p of its sequence.
// Keys are cut into splits of `split` positions (≤ k_attn_split_max; decode uses short splits so that
// even one sequence spreads over many blocks); block (split j, kv head g, query i) computes, for
// the n_head/n_head_kv query heads sharing KV head g, the scores s = scale·q·k of its keys, their max m,
// l = Σ exp(s − m) and o = Σ exp(s − m)·v (fp32), reading each K/V row once for all heads of the group.
// A second kernel merges the splits in index order: M = max m_j, L = Σ l_j·e^{m_j−M},
// out = Σ o_j·e^{m_j−M} / L. The split size is fixed, so a query's result depends only on its own keys
// (batch invariance: the engine uses one split size per path), and no n×n score matrix is stored.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <cstdint>

#include "gpu/kv_layout.hpp"

namespace worker::gpu {

constexpr std::uint32_t k_attn_split_max = 256;
// Decode: 32 keys per split (one round of the split kernel) — more, shorter blocks; with RoPE fused in
// it measured faster than 64 at batch 1 on the H100 (session 4, docs/performance.md).
constexpr std::uint32_t k_attn_split_decode = 32;
constexpr std::uint32_t k_attn_split_prefill = 256;

#if defined(__CUDACC__)
__host__ __device__
#endif
inline std::uint32_t attn_splits_for(std::uint32_t positions, std::uint32_t split) {
  return (positions + split - 1) / split;
}

struct attention_args {
  const float* q = nullptr;          // [nq][ldq] rotated queries, head-major (n_head·head_dim)
  std::uint32_t ldq = 0;
  const kv_seq_desc* seqs = nullptr;
  const std::int32_t* query_seq = nullptr;  // [nq]
  const std::int32_t* query_pos = nullptr;  // [nq]
  std::uint32_t layer = 0;
  std::uint32_t nq = 0;
  std::uint32_t n_head = 0, n_head_kv = 0, head_dim = 0;
  float scale = 1.0f;                // multiplies q·k
  std::uint32_t split = k_attn_split_prefill;  // key positions per split, 1..k_attn_split_max
  std::uint32_t max_splits = 0;      // grid size along the key axis: ≥ attn_splits_for(max position + 1, split)
  float* partial_o = nullptr;        // scratch [nq][n_head][max_splits][head_dim]
  float2* partial_ml = nullptr;      // scratch [nq][n_head][max_splits]
  float* out = nullptr;              // [nq][ldo] fp32, or null
  std::uint32_t ldo = 0;
  __half* out_f16 = nullptr;         // [nq][ld_f16] or null (prefill: input of the output-projection GEMM)
  std::uint32_t ld_f16 = 0;
  std::int8_t* out_q8 = nullptr;     // q_hi [nq][ld_q8] or null (decode: input of the output-projection matvec)
  std::int8_t* out_q8_lo = nullptr;  // q_lo [nq][ld_q8]
  std::uint32_t ld_q8 = 0;
  float4* out_ds = nullptr;
  std::uint32_t ld_ds = 0;
  // out_q8 / out_q8_lo / out_ds of one query in the superblock-minor layout (matvec.cuh sb_minor_byte;
  // n_head·head_dim a multiple of 256): what a one-column Q4_K / Q6_K output projection reads fastest.
  bool q8_sb_minor = false;
  // Decode with RoPE fused in (set k_new): q is the unrotated projection output (biases added); every
  // block rotates the query heads it loads, and the block whose split holds query i's position first
  // rotates K and stores K and V of that position into the cache — what rope_qk_store_kv (rope.cuh)
  // does, with the same arithmetic, without a launch of its own. Requires n_rot = head_dim.
  const float* k_new = nullptr;      // [nq][ldk] unrotated K of the new positions, or null (prefill)
  std::uint32_t ldk = 0;
  const float* v_new = nullptr;      // [nq][ldv]
  std::uint32_t ldv = 0;
  const float2* cos_sin = nullptr;   // [table_positions][head_dim/2] (cos, sin)
  std::uint32_t table_positions = 0;
  // Merge fused in (set merge_counters): the last split block of each (query, KV head) to finish merges
  // that group's heads (same arithmetic and order as the merge kernel) and resets its counter, so no
  // merge launch is needed. [nq][n_head_kv] counters, zero before the first use; they return to zero.
  std::uint32_t* merge_counters = nullptr;
  // With fused RoPE: the block holding the new position loads its other rows before the PDL wait and
  // takes the new row's K and V from shared memory (false: it loads its rows after storing the new
  // one, as before session 12; for measuring). The same bits either way.
  bool own_row_in_smem = true;
  // Launch the split and merge kernels as programmatic dependents. The split kernel then reads the
  // cached K/V rows of positions other than each query's own before the producer has finished: only
  // for launches whose producer writes no cached row but the queries' own (decode: one new position
  // per sequence). With fused RoPE it also reads its (cos, sin) pair of cos_sin (never written by a
  // producer: a table made at start-up) before the wait.
  bool pdl = false;
  // With pdl: the split kernel lets the merge kernel launch when it starts, before its own wait
  // (rmsnorm_args::early_trigger says why that is safe). When the merge kernel lets its own dependent
  // launch is merge_trigger's choice, below.
  bool early_trigger = false;
  // When the merge kernel lets its programmatic dependent (decode: wo) launch: 0 at its start, 1 after
  // its wait, 2 once its partials have landed — the dependent's first weight loads then no longer
  // compete with the split kernel's work, but with the merge's (decode: 2 at batch 1 where wo is a
  // K-quant; adapters/cuda_engine_passes.cpp has the numbers).
  int merge_trigger = 0;
};

// Supported: head_dim 32, 64 or 128, n_head/n_head_kv in {1, 2, 4, 7, 8}.
void attention(const attention_args& a, cudaStream_t stream);

}  // namespace worker::gpu
