// RMSNorm (model-facts.md §3.1): y = x / sqrt(mean(x²) + eps) · w. No `1 + w`, no bias.
#pragma once

#include <cstddef>

namespace worker::cpu {

struct rmsnorm_params {
  std::size_t n = 0;  // elements per row (d_model)
  float eps = 1e-6f;
};

// out[i] = x[i] · scale · weight[i] for one row; the sum of squares is accumulated in double in index
// order. `weight` may be null (plain normalization). out may alias x.
void rmsnorm(const rmsnorm_params& p, const float* x, const float* weight, float* out);

// The same over `n_rows` rows spaced `stride` floats apart.
void rmsnorm_rows(const rmsnorm_params& p, const float* x, const float* weight, float* out,
                  std::size_t n_rows, std::size_t stride);

}  // namespace worker::cpu
