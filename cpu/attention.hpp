// Scaled dot-product attention of one query position against a KV cache: GQA, causal mask, optional
// sliding window and optional per-head sink logits (model-facts.md §3.6-3.7).
//
// For q-head h (KV head h / (n_head/n_head_kv)) at position p1 and visible keys p0 (p0 <= p1, and
// p1 - p0 < window when window > 0): s_j = scale·q·k_j; with sink S_h, M = max(max_j s_j, S_h) and
// p_j = exp(s_j - M) / (Σ_j exp(s_j - M) + exp(S_h - M)); out = Σ_j p_j·v_j. Without a sink the
// exp(S_h - M) term is absent. The sink is not multiplied by `scale`.
#pragma once

#include <cstddef>
#include <cstdint>

namespace worker::cpu {

class thread_pool;

struct attention_params {
  std::uint32_t n_head = 0;     // query heads
  std::uint32_t n_head_kv = 0;  // key/value heads (divides n_head)
  std::uint32_t head_dim = 0;
  float scale = 1.0f;           // multiplies q·k (1/sqrt(head_dim), times any YaRN factor already in q, k)
  std::uint32_t window = 0;     // 0: full causal; else key p0 visible iff p1 - p0 < window
  const float* sinks = nullptr; // [n_head] sink logits, or null for none
};

// The keys/values of one sequence: row p (position p) of K and V holds n_head_kv·head_dim floats
// (head-major), rows `stride` floats apart. Positions [0, p1] must be filled.
struct kv_view {
  const float* k = nullptr;
  const float* v = nullptr;
  std::size_t stride = 0;
};

// First key position visible from query position p1.
std::int64_t attention_first_key(const attention_params& p, std::int64_t p1);

// out[h·head_dim ..] for every head of one query row q (n_head·head_dim floats) at position p1.
// `scratch` holds at least p1 + 1 floats. Per head, scores and the weighted sum of V run in key order.
void attention_row(const attention_params& p, const float* q, std::int64_t p1, const kv_view& kv, float* out,
                   float* scratch);

// One query row's single head (the unit of parallel work): writes head_dim floats to out.
void attention_head(const attention_params& p, std::uint32_t head, const float* q_head, std::int64_t p1,
                    const kv_view& kv, float* out, float* scratch);

}  // namespace worker::cpu
