// Matrix-vector / matrix-matrix products of a stored (possibly quantized) weight with fp32 activations.
//
// A weight is ggml's [K, M] tensor: M rows of K elements, each row a run of blocks of its type
// (model-facts.md §0). y[t][m] = Σ_k W[m][k]·x[t][k]. The CPU reference dequantizes one row at a time
// into fp32 and takes the dot product with every token's activation in a FIXED order (dot_f32 below),
// so each output element depends only on its row and its token: not on the thread count, the chunking,
// or which other tokens share the call (batch invariance).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "cpu/activation_rounding.hpp"
#include "model/ggml_type.hpp"

namespace worker::cpu {

class thread_pool;

// A view of M stored rows of K elements. For a slice of a 3-D tensor (one expert), `data` points at
// the slice's first row.
struct weight_matrix {
  model::ggml_type type = model::ggml_type::f32;
  const std::byte* data = nullptr;
  std::size_t rows = 0;       // M: output features (ne[1])
  std::size_t cols = 0;       // K: input features, the reduction length (ne[0])
  std::size_t row_bytes = 0;  // bytes of one stored row (model::row_bytes(type, cols))

  const std::byte* row(std::size_t m) const { return data + m * row_bytes; }
};

// Builds a view and checks that cols is a whole number of blocks.
weight_matrix make_weight_matrix(model::ggml_type type, const void* data, std::size_t rows,
                                 std::size_t cols);

// Σ a[i]·b[i] in a fixed order: 8 interleaved fp32 partial sums (lane i%8), combined pairwise
// ((0+4)+(2+6))+((1+5)+(3+7)), then the tail. Deterministic and vectorizable without -ffast-math.
float dot_f32(const float* a, const float* b, std::size_t n);

// Dequantizes row m of w into out[0..cols).
void dequantize_row(const weight_matrix& w, std::size_t m, float* out);

struct matmul_args {
  const weight_matrix* w = nullptr;
  const float* x = nullptr;     // [n_tokens][x_stride], first w->cols used
  std::size_t x_stride = 0;     // floats between tokens of x (>= cols)
  std::size_t n_tokens = 0;
  float* y = nullptr;           // [n_tokens][y_stride], first w->rows written
  std::size_t y_stride = 0;     // floats between tokens of y (>= rows)
  const float* bias = nullptr;  // [rows] added after the dot product, or null
  bool accumulate = false;      // y += W·x (+bias) instead of y = ...
  activation_rounding rounding = activation_rounding::exact;  // test-only: llama.cpp emulation, numerics studies
};

// y = W·x (+ bias) for every token; rows are split over the pool's threads.
void matmul(const matmul_args& args, thread_pool* pool);

// Row `id` of an embedding table (ggml [K, n_vocab]) dequantized to out[0..K).
void embedding_row(const weight_matrix& table, std::size_t id, float* out);

}  // namespace worker::cpu
