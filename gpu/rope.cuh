// RoPE (NEOX pairs (i, i + n_rot/2)) on Q and K, QKV biases, and the store of K and V into the fp16
// KV cache, in one launch per layer. cos/sin come from a table the engine fills with the CPU
// reference's angles (cpu::rope_angles, which also carries YaRN), so the rotation uses bit-identical
// angles on both backends; the rotation itself rounds like the CPU (x0·c − x1·s as two products and a
// difference, no FMA).
//
// Token t belongs to sequence seqs[token_seq[t]] at position token_pos[t]: its Q heads are rotated in
// place (fp32) and its K (rotated) and V are written to that sequence's cache at that position.
#pragma once

#include <cuda_runtime_api.h>
#include <vector_types.h>

#include <cstdint>

#include "gpu/kv_layout.hpp"

namespace worker::gpu {

struct rope_kv_args {
  float* q = nullptr;              // [n][ldq], n_head·head_dim used; rotated in place
  std::uint32_t ldq = 0;
  const float* k = nullptr;        // [n][ldk], n_head_kv·head_dim
  std::uint32_t ldk = 0;
  const float* v = nullptr;        // [n][ldv]
  std::uint32_t ldv = 0;
  const float* q_bias = nullptr;   // optional biases added before the rotation
  const float* k_bias = nullptr;
  const float* v_bias = nullptr;
  const float2* cos_sin = nullptr; // [table_positions][n_rot/2] (cos, sin)
  std::uint32_t table_positions = 0;
  const kv_seq_desc* seqs = nullptr;
  const std::int32_t* token_seq = nullptr;  // [n]
  const std::int32_t* token_pos = nullptr;  // [n]
  std::uint32_t layer = 0;
  std::uint32_t n = 0;
  std::uint32_t n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0;
};

void rope_qk_store_kv(const rope_kv_args& a, cudaStream_t stream);

// out[t][i] = silu(gate[t][i]) · up[t][i] as fp16 (prefill FFN, between the gate/up and down GEMMs).
void swiglu_to_f16(const float* gate, const float* up, std::uint32_t ld_in, std::uint32_t n, std::uint32_t dim,
                   __half* out, std::uint32_t ld_out, cudaStream_t stream);

}  // namespace worker::gpu
