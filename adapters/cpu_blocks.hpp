// The shared blocks of decoder.hpp executed with the CPU reference ops, over a batch of T tokens that
// may belong to different sequences. Each token carries its position and its sequence's KV cache for
// the current layer; nothing in a token's result depends on the other tokens of the batch except,
// through the cache, the earlier tokens of its own sequence.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "adapters/decoder.hpp"
#include "cpu/activation_rounding.hpp"
#include "cpu/matmul.hpp"

namespace worker::cpu {
class thread_pool;
}

namespace worker::adapters {

// Observer of named intermediates, for diffing a run against a reference tensor by tensor (as llama.cpp's
// graph callbacks allow): called with the name, the layer, the row of the batch and the row's values.
// Names (llama.cpp's where it has one): "attn_out" (attention output before Wo, [n_head·head_dim]; llama.cpp
// "kqv_out"), "ffn_moe_logits" (router logits, [n_expert]), "l_out" (residual stream after the layer,
// [d_model]); dense FFN: "ffn_inp" (residual before the FFN, [d_model]), "ffn_norm" ([d_model]),
// "ffn_gate", "ffn_up" (projections, [n_ff]), "ffn_swiglu" ([n_ff]).
using cpu_trace_fn = std::function<void(std::string_view name, std::size_t layer, std::size_t row,
                                        std::span<const float> values)>;

// How the blocks run: the thread pool (may be null), the test-only activation rounding, and the trace.
struct cpu_run_config {
  cpu::thread_pool* pool = nullptr;
  cpu::activation_rounding rounding = cpu::activation_rounding::exact;
  const cpu_trace_fn* trace = nullptr;  // null: no tracing
  std::size_t layer = 0;                // the layer being run (for the trace)
};

// Calls the trace for each of `n_rows` rows of `width` floats, if tracing.
void cpu_trace_rows(const cpu_run_config& run, std::string_view name, const float* rows, std::size_t n_rows,
                    std::size_t width);

// One token of the batch, for one layer: where its sequence's K/V rows live (row p at base + p·width).
struct cpu_token_kv {
  std::int64_t pos = 0;
  float* k = nullptr;  // K rows of the token's sequence for this layer
  float* v = nullptr;  // V rows
};

// A weight_matrix for a 2-D tensor, or for expert `e` of a 3-D [K, M, X] tensor.
cpu::weight_matrix matrix_of(const tensor_ref& t, std::int64_t expert = -1);

// h[t] += Wo·attn(rope(Wq·a + bq), rope(Wk·a + bk), Wv·a + bv) (+ bo) with a = rmsnorm(h[t]). Writes the
// token's K and V rows at its position before any query of the batch reads the cache.
void cpu_attention_forward(const attention_block& b, float norm_eps, float* h, std::size_t n_tokens,
                           std::size_t d_model, const std::vector<cpu_token_kv>& kv, const cpu_run_config& run);

// h[t] += down·act(gate·f, up·f) with f = rmsnorm(h[t]).
void cpu_dense_ffn_forward(const dense_ffn_block& b, float norm_eps, float* h, std::size_t n_tokens,
                           std::size_t d_model, const cpu_run_config& run);

// h[t] += Σ_rank w_rank·(down_e·act(gate_e·f + bg_e, up_e·f + bu_e) + bd_e), summed in rank order.
void cpu_moe_ffn_forward(const moe_ffn_block& b, float norm_eps, float* h, std::size_t n_tokens,
                         std::size_t d_model, const cpu_run_config& run);

// logits[r] = output·rmsnorm(h[rows[r]], output_norm) for the selected token rows.
void cpu_logits_forward(const decoder_model& m, const float* h, const std::vector<std::size_t>& rows,
                        float* logits, const cpu_run_config& run);

}  // namespace worker::adapters
