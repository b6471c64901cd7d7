// Feed-forward activations and MoE routing (model-facts.md §3.1-3.3).
//
// swiglu:      out = silu(g)·u with silu(x) = x·σ(x)                                (qwen2 dense FFN)
// swiglu_oai:  x = min(g, limit), y = clamp(u, -limit, limit), out = x·σ(α·x)·(y + 1) (gpt-oss experts)
// moe_route:   picks the k experts with the largest router logits (ties: lower index first) and their
//              mixing weights, either softmax over the k selected logits (gpt-oss) or the softmax over
//              all experts read at the selected ones (the order used by other MoE models; kept for tests).
#pragma once

#include <cstddef>
#include <cstdint>

namespace worker::cpu {

void swiglu(const float* gate, const float* up, float* out, std::size_t n);

struct swiglu_oai_params {
  float alpha = 1.702f;
  float limit = 7.0f;
};

void swiglu_oai(const swiglu_oai_params& p, const float* gate, const float* up, float* out, std::size_t n);

enum class moe_gating {
  softmax_of_top_k,  // top-k on raw logits, then softmax over the k selected (gpt-oss)
  top_k_of_softmax,  // softmax over all experts, then the selected probabilities (unnormalized)
};

struct moe_route_params {
  std::uint32_t n_expert = 0;
  std::uint32_t n_used = 0;  // k
  moe_gating gating = moe_gating::softmax_of_top_k;
};

// logits: [n_expert]. Writes k expert indices in descending logit order and their weights.
void moe_route(const moe_route_params& p, const float* logits, std::uint32_t* experts, float* weights);

}  // namespace worker::cpu
