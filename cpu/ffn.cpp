// FFN activations and MoE routing in fp32.
#include "cpu/ffn.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace worker::cpu {

namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace

void swiglu(const float* gate, const float* up, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void swiglu_oai(const swiglu_oai_params& p, const float* gate, const float* up, float* out, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const float x = std::min(gate[i], p.limit);
    const float y = std::clamp(up[i], -p.limit, p.limit);
    out[i] = x * sigmoid(p.alpha * x) * (y + 1.0f);
  }
}

void moe_route(const moe_route_params& p, const float* logits, std::uint32_t* experts, float* weights) {
  std::vector<std::uint32_t> order(p.n_expert);
  std::iota(order.begin(), order.end(), 0u);
  std::partial_sort(order.begin(), order.begin() + p.n_used, order.end(), [&](std::uint32_t a, std::uint32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  for (std::uint32_t i = 0; i < p.n_used; ++i) experts[i] = order[i];

  // Both modes are a softmax over some set S of logits, read at the selected experts.
  const std::uint32_t n_set = p.gating == moe_gating::softmax_of_top_k ? p.n_used : p.n_expert;
  const std::uint32_t* set = p.gating == moe_gating::softmax_of_top_k ? experts : order.data();
  const float m = logits[experts[0]];  // the largest logit is in both sets
  double denom = 0.0;
  for (std::uint32_t i = 0; i < n_set; ++i) denom += std::exp(logits[set[i]] - m);
  for (std::uint32_t i = 0; i < p.n_used; ++i) {
    weights[i] = static_cast<float>(std::exp(logits[experts[i]] - m) / denom);
  }
}

}  // namespace worker::cpu
