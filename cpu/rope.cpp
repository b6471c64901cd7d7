// RoPE angles and rotation in fp32 (see rope.hpp for the formulas).
#include "cpu/rope.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace worker::cpu {

namespace {

// Pair index at which the wavelength covers β rotations over the original context.
float yarn_corr_dim(std::uint32_t n_dims, std::uint32_t n_ctx_orig, float beta, float base) {
  return static_cast<float>(n_dims) *
         std::log(static_cast<float>(n_ctx_orig) / (beta * 2.0f * std::numbers::pi_v<float>)) /
         (2.0f * std::log(base));
}

}  // namespace

void rope_yarn_corr_dims(const rope_params& p, float* low, float* high) {
  const float start = std::floor(yarn_corr_dim(p.n_dims, p.n_ctx_orig, p.beta_fast, p.freq_base));
  const float end = std::ceil(yarn_corr_dim(p.n_dims, p.n_ctx_orig, p.beta_slow, p.freq_base));
  *low = std::max(0.0f, start);
  *high = std::min(static_cast<float>(p.n_dims) - 1.0f, end);
}

void rope_angles(const rope_params& p, std::int64_t pos, float* cos_out, float* sin_out) {
  const std::uint32_t n_pairs = p.n_dims / 2;
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_dims));
  float low = 0.0f, high = 0.0f;
  float mscale = p.attn_factor;
  if (p.ext_factor != 0.0f) {
    rope_yarn_corr_dims(p, &low, &high);
    mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
  }
  float theta_extrap = static_cast<float>(pos);
  for (std::uint32_t i = 0; i < n_pairs; ++i) {
    const float theta_interp = p.freq_scale * theta_extrap;
    float theta = theta_interp;
    if (p.ext_factor != 0.0f) {
      const float y = (static_cast<float>(i) - low) / std::max(0.001f, high - low);
      const float ramp = (1.0f - std::min(1.0f, std::max(0.0f, y))) * p.ext_factor;
      theta = theta_interp * (1.0f - ramp) + theta_extrap * ramp;
    }
    cos_out[i] = std::cos(theta) * mscale;
    sin_out[i] = std::sin(theta) * mscale;
    theta_extrap *= theta_scale;
  }
}

void rope_apply(const rope_params& p, const float* cos_v, const float* sin_v, float* x, std::size_t n_heads,
                std::size_t head_dim) {
  const std::size_t n_pairs = p.n_dims / 2;
  for (std::size_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (std::size_t i = 0; i < n_pairs; ++i) {
      const std::size_t a = p.style == rope_style::neox ? i : 2 * i;
      const std::size_t b = p.style == rope_style::neox ? i + n_pairs : 2 * i + 1;
      const float x0 = v[a];
      const float x1 = v[b];
      v[a] = x0 * cos_v[i] - x1 * sin_v[i];
      v[b] = x0 * sin_v[i] + x1 * cos_v[i];
    }
  }
}

void rope_heads(const rope_params& p, std::int64_t pos, float* x, std::size_t n_heads, std::size_t head_dim) {
  std::vector<float> c(p.n_dims / 2), s(p.n_dims / 2);
  rope_angles(p, pos, c.data(), s.data());
  rope_apply(p, c.data(), s.data(), x, n_heads, head_dim);
}

}  // namespace worker::cpu
