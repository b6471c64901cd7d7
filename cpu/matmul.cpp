// Dequantize-a-row-then-dot matmul. One stored row is dequantized once per call and reused for every
// token, so a prefill of T tokens costs one dequantization per row, and decode (T = 1) costs the same as
// a fused dot_row. Plain float types skip the copy.
#include "cpu/matmul.hpp"

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/thread_pool.hpp"
#include "model/quant.hpp"

namespace worker::cpu {

weight_matrix make_weight_matrix(model::ggml_type type, const void* data, std::size_t rows,
                                 std::size_t cols) {
  const auto& t = model::traits(type);
  if (cols % t.block_elems != 0) {
    throw std::invalid_argument("weight row of " + std::to_string(cols) + " elements is not a whole number of " +
                                std::string(t.name) + " blocks");
  }
  weight_matrix w;
  w.type = type;
  w.data = static_cast<const std::byte*>(data);
  w.rows = rows;
  w.cols = cols;
  w.row_bytes = model::row_bytes(type, cols);
  return w;
}

float dot_f32(const float* a, const float* b, std::size_t n) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (std::size_t l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  float s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

void dequantize_row(const weight_matrix& w, std::size_t m, float* out) {
  if (w.type == model::ggml_type::f32) {
    std::memcpy(out, w.row(m), w.cols * sizeof(float));
  } else {
    model::dequantize_row(w.type, w.row(m), out, w.cols);
  }
}

void embedding_row(const weight_matrix& table, std::size_t id, float* out) {
  if (id >= table.rows) throw std::out_of_range("embedding row " + std::to_string(id) + " out of range");
  dequantize_row(table, id, out);
}

void matmul(const matmul_args& args, thread_pool* pool) {
  matmul_args a = args;
  std::vector<float> rounded;
  if (a.rounding != activation_rounding::exact && a.w->type != model::ggml_type::f32) {
    rounded.resize(a.n_tokens * a.w->cols);
    for (std::size_t t = 0; t < a.n_tokens; ++t) {
      std::memcpy(rounded.data() + t * a.w->cols, a.x + t * a.x_stride, a.w->cols * sizeof(float));
      round_activations(a.rounding, a.w->type, rounded.data() + t * a.w->cols, a.w->cols);
    }
    a.x = rounded.data();
    a.x_stride = a.w->cols;
  }
  const weight_matrix& w = *a.w;
  const bool is_f32 = w.type == model::ggml_type::f32;
  auto rows_chunk = [&](std::size_t begin, std::size_t end) {
    std::vector<float> buf(is_f32 ? 0 : w.cols);
    for (std::size_t m = begin; m < end; ++m) {
      const float* row;
      if (is_f32) {
        row = reinterpret_cast<const float*>(w.row(m));
      } else {
        model::dequantize_row(w.type, w.row(m), buf.data(), w.cols);
        row = buf.data();
      }
      const float b = a.bias ? a.bias[m] : 0.0f;
      for (std::size_t t = 0; t < a.n_tokens; ++t) {
        const float v = dot_f32(row, a.x + t * a.x_stride, w.cols) + b;
        float& dst = a.y[t * a.y_stride + m];
        dst = a.accumulate ? dst + v : v;
      }
    }
  };
  // Keep chunks large enough that a tiny matrix stays on one thread (~64k multiply-adds per chunk).
  const std::size_t work_per_row = w.cols * (a.n_tokens == 0 ? 1 : a.n_tokens);
  const std::size_t min_rows = work_per_row >= 65536 ? 1 : 65536 / work_per_row;
  if (pool) {
    pool->parallel_for(w.rows, rows_chunk, min_rows);
  } else {
    rows_chunk(0, w.rows);
  }
}

}  // namespace worker::cpu
