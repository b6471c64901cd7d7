// llama.cpp CPU activation rounding, emulated (see activation_rounding.hpp for the rules).
#include "cpu/activation_rounding.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "model/quant.hpp"

namespace worker::cpu {

namespace {

// Round half to even, as SSE/AVX rounding in the default mode and ggml's nearest_int bit trick do.
float round_even(float v) { return std::nearbyint(v); }

void round_q8_0(float* x, std::size_t n) {
  for (std::size_t b = 0; b < n; b += 32) {
    float amax = 0.0f;
    for (std::size_t i = 0; i < 32; ++i) amax = std::max(amax, std::abs(x[b + i]));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const float d16 = model::fp16_to_fp32(model::fp32_to_fp16(d));
    for (std::size_t i = 0; i < 32; ++i) x[b + i] = d16 * round_even(x[b + i] * id);
  }
}

void round_q8_k(float* x, std::size_t n) {
  for (std::size_t b = 0; b < n; b += 256) {
    float amax = 0.0f, max = 0.0f;
    for (std::size_t i = 0; i < 256; ++i) {
      const float ax = std::abs(x[b + i]);
      if (ax > amax) amax = ax, max = x[b + i];
    }
    if (amax == 0.0f) {
      std::fill_n(x + b, 256, 0.0f);
      continue;
    }
    const float iscale = -127.0f / max;
    const float d = 1.0f / iscale;
    for (std::size_t i = 0; i < 256; ++i) x[b + i] = d * std::min(127.0f, round_even(iscale * x[b + i]));
  }
}

// gpu/q8_act.cuh's quantize_values per block of 32, as values: d_hi = max|x|/127, q_hi = round(x/d_hi),
// r = x − d_hi·q_hi, d_lo = max|r|/127, q_lo = round(r/d_lo); the kernels' dots see d_hi·q_hi (+ d_lo·q_lo).
void round_q8_levels(float* x, std::size_t n, bool two_levels) {
  for (std::size_t b = 0; b < n; b += 32) {
    float amax = 0.0f;
    for (std::size_t i = 0; i < 32; ++i) amax = std::max(amax, std::abs(x[b + i]));
    const float dh = amax / 127.0f;
    float qh[32], r[32], rmax = 0.0f;
    for (std::size_t i = 0; i < 32; ++i) {
      qh[i] = dh == 0.0f ? 0.0f : round_even(x[b + i] / dh);
      r[i] = x[b + i] - dh * qh[i];
      rmax = std::max(rmax, std::abs(r[i]));
    }
    const float dl = rmax / 127.0f;
    for (std::size_t i = 0; i < 32; ++i) {
      const float ql = dl == 0.0f ? 0.0f : round_even(r[i] / dl);
      x[b + i] = two_levels ? dh * qh[i] + dl * ql : dh * qh[i];
    }
  }
}

}  // namespace

void round_activations(activation_rounding mode, model::ggml_type weight_type, float* x, std::size_t n) {
  if (mode == activation_rounding::exact || weight_type == model::ggml_type::f32) return;
  if (mode == activation_rounding::llama_cpu) return round_activations_like_llama(weight_type, x, n);
  if (mode == activation_rounding::fp16) {
    for (std::size_t i = 0; i < n; ++i) x[i] = model::fp16_to_fp32(model::fp32_to_fp16(x[i]));
    return;
  }
  if (n % 32 != 0) throw std::invalid_argument("int8 activation rounding needs a multiple of 32 values");
  round_q8_levels(x, n, mode == activation_rounding::q8_two_level);
}

void round_activations_like_llama(model::ggml_type weight_type, float* x, std::size_t n) {
  using model::ggml_type;
  switch (weight_type) {
    case ggml_type::f32:
      return;
    case ggml_type::f16:
      for (std::size_t i = 0; i < n; ++i) x[i] = model::fp16_to_fp32(model::fp32_to_fp16(x[i]));
      return;
    case ggml_type::bf16:
      for (std::size_t i = 0; i < n; ++i) x[i] = model::bf16_to_fp32(model::fp32_to_bf16(x[i]));
      return;
    case ggml_type::q4_0:
    case ggml_type::q5_0:
    case ggml_type::q8_0:
    case ggml_type::mxfp4:
      if (n % 32 != 0) throw std::invalid_argument("Q8_0 activation rounding needs a multiple of 32 values");
      round_q8_0(x, n);
      return;
    case ggml_type::q4_k:
    case ggml_type::q5_k:
    case ggml_type::q6_k:
      if (n % 256 != 0) throw std::invalid_argument("Q8_K activation rounding needs a multiple of 256 values");
      round_q8_k(x, n);
      return;
    default:
      throw std::invalid_argument("no llama.cpp activation rounding known for type " + std::string(model::type_name(weight_type)));
  }
}

}  // namespace worker::cpu
