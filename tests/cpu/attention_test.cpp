// Attention against a double-precision reference that appends the sink as an extra softmax column and
// drops it afterwards (the formulation of the gpt-oss reference implementation), over GQA shapes,
// causal and sliding-window masks.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/attention.hpp"

using worker::cpu::attention_params;
using worker::cpu::kv_view;

namespace {

// out[h] for query q at position p1 with keys/values rows 0..p1, in double.
std::vector<double> reference(const attention_params& p, const std::vector<float>& q, std::int64_t p1,
                              const std::vector<float>& k, const std::vector<float>& v, std::size_t stride) {
  const std::size_t hd = p.head_dim;
  std::vector<double> out(p.n_head * hd, 0.0);
  for (std::uint32_t h = 0; h < p.n_head; ++h) {
    const std::uint32_t g = h / (p.n_head / p.n_head_kv);
    std::vector<double> logits;  // visible keys, then the sink column
    std::vector<std::int64_t> keys;
    for (std::int64_t j = 0; j <= p1; ++j) {
      if (p.window > 0 && p1 - j >= static_cast<std::int64_t>(p.window)) continue;
      double dot = 0;
      for (std::size_t d = 0; d < hd; ++d) dot += double(q[h * hd + d]) * k[j * stride + g * hd + d];
      logits.push_back(dot * p.scale);
      keys.push_back(j);
    }
    if (p.sinks) logits.push_back(p.sinks[h]);
    double m = -INFINITY;
    for (double l : logits) m = std::max(m, l);
    double z = 0;
    for (double l : logits) z += std::exp(l - m);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const double w = std::exp(logits[i] - m) / z;
      for (std::size_t d = 0; d < hd; ++d) out[h * hd + d] += w * v[keys[i] * stride + g * hd + d];
    }
  }
  return out;
}

}  // namespace

TEST_CASE("attention matches the double reference with GQA, windows and sinks", "[attention]") {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const std::uint32_t window : {0u, 5u}) {
    for (const bool with_sinks : {false, true}) {
      attention_params p;
      p.n_head = 8;
      p.n_head_kv = 2;
      p.head_dim = 16;
      p.scale = 0.25f;
      p.window = window;
      std::vector<float> sinks(8);
      for (auto& s : sinks) s = nd(rng);
      p.sinks = with_sinks ? sinks.data() : nullptr;
      const std::size_t stride = p.n_head_kv * p.head_dim;
      const std::int64_t n_pos = 12;
      std::vector<float> k(n_pos * stride), v(n_pos * stride), q(p.n_head * p.head_dim);
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      for (auto& x : q) x = nd(rng) * 2.0f;
      for (std::int64_t p1 = 0; p1 < n_pos; ++p1) {
        std::vector<float> out(q.size()), scratch(n_pos);
        worker::cpu::attention_row(p, q.data(), p1, kv_view{k.data(), v.data(), stride}, out.data(), scratch.data());
        const auto ref = reference(p, q, p1, k, v, stride);
        for (std::size_t i = 0; i < out.size(); ++i) REQUIRE(out[i] == Approx(ref[i]).margin(1e-5));
      }
    }
  }
}

TEST_CASE("query head h reads KV head h / (n_head / n_head_kv)", "[attention]") {
  attention_params p;
  p.n_head = 8;
  p.n_head_kv = 2;
  p.head_dim = 4;
  const std::size_t stride = 8;
  std::vector<float> k(stride, 0.0f), v(stride);
  for (std::size_t d = 0; d < 4; ++d) v[d] = 1.0f, v[4 + d] = 2.0f;  // KV head 0 holds 1s, head 1 holds 2s
  std::vector<float> q(32, 0.0f), out(32), scratch(1);
  worker::cpu::attention_row(p, q.data(), 0, kv_view{k.data(), v.data(), stride}, out.data(), scratch.data());
  for (std::uint32_t h = 0; h < 8; ++h) CHECK(out[h * 4] == (h < 4 ? 1.0f : 2.0f));
}

TEST_CASE("a sink takes probability mass but adds no value", "[attention]") {
  attention_params p;
  p.n_head = 1;
  p.n_head_kv = 1;
  p.head_dim = 2;
  const float sink = std::log(3.0f);  // exp(sink) = 3 against exp(0) = 1 for the single key
  p.sinks = &sink;
  std::vector<float> k = {0.0f, 0.0f}, v = {4.0f, -8.0f}, q = {1.0f, 1.0f}, out(2), scratch(1);
  worker::cpu::attention_row(p, q.data(), 0, kv_view{k.data(), v.data(), 2}, out.data(), scratch.data());
  CHECK(out[0] == Approx(1.0f));   // 4 · 1/(1+3)
  CHECK(out[1] == Approx(-2.0f));
}

TEST_CASE("a window of w lets a query see itself and the w-1 previous keys", "[attention]") {
  attention_params p;
  p.window = 128;
  CHECK(worker::cpu::attention_first_key(p, 0) == 0);
  CHECK(worker::cpu::attention_first_key(p, 127) == 0);
  CHECK(worker::cpu::attention_first_key(p, 128) == 1);
  CHECK(worker::cpu::attention_first_key(p, 300) == 173);
  p.window = 0;
  CHECK(worker::cpu::attention_first_key(p, 300) == 0);
}
