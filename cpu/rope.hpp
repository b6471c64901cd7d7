// Rotary position embedding, NEOX ("half split") or interleaved style, with optional YaRN scaling as
// ggml computes it (model-facts.md §3.4-3.5).
//
// For pair i ∈ [0, n_dims/2): θ_extrap = pos · base^(-2i/n_dims) (computed, like ggml's CPU backend, by
// repeated fp32 multiplication with theta_scale = base^(-2/n_dims)); θ_interp = freq_scale · θ_extrap.
// With ext_factor ≠ 0 (YaRN): ramp(i) = 1 - clamp((i - low)/max(0.001, high - low), 0, 1) with
// low/high from yarn_corr_dims (floor/ceil, as llama.cpp), θ = θ_interp·(1 - ramp·ext) + θ_extrap·ramp·ext,
// and cos/sin are multiplied by m = attn_factor·(1 + 0.1·ln(1/freq_scale)). Without YaRN, θ = θ_interp
// and m = attn_factor.
// NEOX rotates (x[i], x[i + n_dims/2]); interleaved rotates (x[2i], x[2i+1]). Elements past n_dims are
// left alone.
#pragma once

#include <cstddef>
#include <cstdint>

namespace worker::cpu {

enum class rope_style {
  neox,         // pairs (i, i + n_dims/2): qwen2, gpt-oss (llama.cpp rope type 2)
  interleaved,  // pairs (2i, 2i+1): llama-style "NORM" rope; no model here uses it (kept for tests)
};

struct rope_params {
  std::uint32_t n_dims = 0;   // rotated dimensions per head (n_rot); even, <= head_dim
  float freq_base = 10000.0f;
  rope_style style = rope_style::neox;
  float freq_scale = 1.0f;    // 1 / rope.scaling.factor
  float ext_factor = 0.0f;    // 1 for YaRN, 0 for none
  float attn_factor = 1.0f;   // extra cos/sin multiplier (llama.cpp's yarn_attn_factor)
  float beta_fast = 32.0f;    // YaRN correction range, in rotations
  float beta_slow = 1.0f;
  std::uint32_t n_ctx_orig = 0;  // YaRN original training context
};

// YaRN's correction range [low, high] in pair indices: floor/ceil of
// n_dims·ln(n_ctx_orig/(β·2π)) / (2·ln base), clamped to [0, n_dims-1].
void rope_yarn_corr_dims(const rope_params& p, float* low, float* high);

// cos/sin (already multiplied by the magnitude factor) for every pair at position `pos`:
// cos_out/sin_out have n_dims/2 entries.
void rope_angles(const rope_params& p, std::int64_t pos, float* cos_out, float* sin_out);

// Rotates `n_heads` head vectors of `head_dim` floats (head h at x + h·head_dim) in place using
// precomputed angles for their position.
void rope_apply(const rope_params& p, const float* cos_v, const float* sin_v, float* x, std::size_t n_heads,
                std::size_t head_dim);

// Convenience: angles for `pos`, then rope_apply.
void rope_heads(const rope_params& p, std::int64_t pos, float* x, std::size_t n_heads, std::size_t head_dim);

}  // namespace worker::cpu
