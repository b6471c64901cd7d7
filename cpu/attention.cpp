// Attention for one query head: scores in fp32 (dot_f32 order), softmax with a double-precision
// denominator, and the V sum accumulated in key order in fp32.
#include "cpu/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/matmul.hpp"

namespace worker::cpu {

std::int64_t attention_first_key(const attention_params& p, std::int64_t p1) {
  if (p.window == 0) return 0;
  return std::max<std::int64_t>(0, p1 - static_cast<std::int64_t>(p.window) + 1);
}

void attention_head(const attention_params& p, std::uint32_t head, const float* q_head, std::int64_t p1,
                    const kv_view& kv, float* out, float* scratch) {
  const std::uint32_t hd = p.head_dim;
  const std::uint32_t kv_head = head / (p.n_head / p.n_head_kv);
  const std::int64_t first = attention_first_key(p, p1);
  const std::size_t n_keys = static_cast<std::size_t>(p1 - first + 1);

  float max_s = -std::numeric_limits<float>::infinity();
  for (std::size_t j = 0; j < n_keys; ++j) {
    const float* k = kv.k + static_cast<std::size_t>(first + static_cast<std::int64_t>(j)) * kv.stride +
                     static_cast<std::size_t>(kv_head) * hd;
    const float s = dot_f32(q_head, k, hd) * p.scale;
    scratch[j] = s;
    max_s = std::max(max_s, s);
  }
  const float sink = p.sinks ? p.sinks[head] : -std::numeric_limits<float>::infinity();
  const float m = std::max(max_s, sink);

  double denom = 0.0;
  for (std::size_t j = 0; j < n_keys; ++j) {
    scratch[j] = std::exp(scratch[j] - m);
    denom += scratch[j];
  }
  if (p.sinks) denom += std::exp(sink - m);
  const float inv = static_cast<float>(1.0 / denom);

  for (std::uint32_t d = 0; d < hd; ++d) out[d] = 0.0f;
  for (std::size_t j = 0; j < n_keys; ++j) {
    const float w = scratch[j] * inv;
    const float* v = kv.v + static_cast<std::size_t>(first + static_cast<std::int64_t>(j)) * kv.stride +
                     static_cast<std::size_t>(kv_head) * hd;
    for (std::uint32_t d = 0; d < hd; ++d) out[d] += w * v[d];
  }
}

void attention_row(const attention_params& p, const float* q, std::int64_t p1, const kv_view& kv, float* out,
                   float* scratch) {
  for (std::uint32_t h = 0; h < p.n_head; ++h) {
    attention_head(p, h, q + static_cast<std::size_t>(h) * p.head_dim, p1, kv, out + static_cast<std::size_t>(h) * p.head_dim,
                   scratch);
  }
}

}  // namespace worker::cpu
