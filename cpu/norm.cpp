// RMSNorm in fp32 with a double-precision sum of squares (llama.cpp's CPU backend also sums in double).
#include "cpu/norm.hpp"

#include <cmath>

namespace worker::cpu {

void rmsnorm(const rmsnorm_params& p, const float* x, const float* weight, float* out) {
  double sum = 0.0;
  for (std::size_t i = 0; i < p.n; ++i) sum += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  const float mean = static_cast<float>(sum / static_cast<double>(p.n));
  const float scale = 1.0f / std::sqrt(mean + p.eps);
  if (weight) {
    for (std::size_t i = 0; i < p.n; ++i) out[i] = x[i] * scale * weight[i];
  } else {
    for (std::size_t i = 0; i < p.n; ++i) out[i] = x[i] * scale;
  }
}

void rmsnorm_rows(const rmsnorm_params& p, const float* x, const float* weight, float* out,
                  std::size_t n_rows, std::size_t stride) {
  for (std::size_t r = 0; r < n_rows; ++r) rmsnorm(p, x + r * stride, weight, out + r * stride);
}

}  // namespace worker::cpu
