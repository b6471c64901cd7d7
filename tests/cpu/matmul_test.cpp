// Matmul over stored rows of every supported type: values against a double-precision sum over the
// dequantized weights, and the determinism contract (thread count and batch composition change nothing,
// bit for bit).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "cpu/matmul.hpp"
#include "cpu/thread_pool.hpp"
#include "model/quant.hpp"

using worker::model::ggml_type;

namespace {

struct stored {
  std::vector<std::byte> bytes;
  worker::cpu::weight_matrix w;
};

stored make_weights(ggml_type type, std::size_t rows, std::size_t cols, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  stored s;
  const std::size_t rb = worker::model::row_bytes(type, cols);
  s.bytes.resize(rows * rb);
  std::vector<float> row(cols);
  for (std::size_t r = 0; r < rows; ++r) {
    for (auto& x : row) x = nd(rng);
    worker::model::quantize_row(type, row.data(), s.bytes.data() + r * rb, cols);
  }
  s.w = worker::cpu::make_weight_matrix(type, s.bytes.data(), rows, cols);
  return s;
}

std::vector<float> run(const worker::cpu::weight_matrix& w, const std::vector<float>& x, std::size_t n_tokens,
                       worker::cpu::thread_pool* pool, const float* bias = nullptr) {
  std::vector<float> y(n_tokens * w.rows, 0.0f);
  worker::cpu::matmul_args a;
  a.w = &w;
  a.x = x.data();
  a.x_stride = w.cols;
  a.n_tokens = n_tokens;
  a.y = y.data();
  a.y_stride = w.rows;
  a.bias = bias;
  worker::cpu::matmul(a, pool);
  return y;
}

const ggml_type k_types[] = {ggml_type::f32,  ggml_type::f16,  ggml_type::bf16, ggml_type::q8_0, ggml_type::q4_0,
                             ggml_type::q5_0, ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k, ggml_type::mxfp4};

}  // namespace

TEST_CASE("matmul equals the double-precision dot of dequantized rows for every type", "[matmul]") {
  const std::size_t rows = 37, cols = 512, n_tokens = 3;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n_tokens * cols);
  for (auto& v : x) v = nd(rng);
  std::vector<float> bias(rows);
  for (auto& v : bias) v = nd(rng);
  worker::cpu::thread_pool pool(2);
  for (const ggml_type type : k_types) {
    INFO("type " << worker::model::type_name(type));
    const stored s = make_weights(type, rows, cols, 11);
    const auto y = run(s.w, x, n_tokens, &pool, bias.data());
    std::vector<float> deq(cols);
    for (std::size_t r = 0; r < rows; ++r) {
      worker::model::dequantize_row(type, s.w.row(r), deq.data(), cols);
      for (std::size_t t = 0; t < n_tokens; ++t) {
        double ref = bias[r];
        double mag = 0;
        for (std::size_t k = 0; k < cols; ++k) {
          ref += double(deq[k]) * x[t * cols + k];
          mag += std::abs(double(deq[k]) * x[t * cols + k]);
        }
        REQUIRE(y[t * rows + r] == Approx(ref).margin(1e-6 * mag + 1e-6));
      }
    }
  }
}

TEST_CASE("matmul results do not depend on the thread count", "[matmul][determinism]") {
  const std::size_t rows = 300, cols = 256, n_tokens = 9;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n_tokens * cols);
  for (auto& v : x) v = nd(rng);
  for (const ggml_type type : {ggml_type::q4_k, ggml_type::f16, ggml_type::mxfp4}) {
    const stored s = make_weights(type, rows, cols, 13);
    const auto y1 = run(s.w, x, n_tokens, nullptr);
    for (const unsigned threads : {2u, 3u, 5u}) {
      worker::cpu::thread_pool pool(threads);
      REQUIRE(run(s.w, x, n_tokens, &pool) == y1);
    }
  }
}

TEST_CASE("a token's matmul result is the same alone and inside a batch", "[matmul][determinism]") {
  const std::size_t rows = 64, cols = 256, n_tokens = 7;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n_tokens * cols);
  for (auto& v : x) v = nd(rng);
  const stored s = make_weights(ggml_type::q8_0, rows, cols, 17);
  worker::cpu::thread_pool pool(2);
  const auto batch = run(s.w, x, n_tokens, &pool);
  for (std::size_t t = 0; t < n_tokens; ++t) {
    const std::vector<float> one(x.begin() + t * cols, x.begin() + (t + 1) * cols);
    const auto alone = run(s.w, one, 1, &pool);
    for (std::size_t r = 0; r < rows; ++r) REQUIRE(alone[r] == batch[t * rows + r]);
  }
}

TEST_CASE("matmul accumulates into y when asked", "[matmul]") {
  const stored s = make_weights(ggml_type::f32, 4, 32, 1);
  std::vector<float> x(32, 1.0f), y(4, 10.0f);
  worker::cpu::matmul_args a;
  a.w = &s.w;
  a.x = x.data();
  a.x_stride = 32;
  a.n_tokens = 1;
  a.y = y.data();
  a.y_stride = 4;
  a.accumulate = true;
  worker::cpu::matmul(a, nullptr);
  std::vector<float> row(32);
  for (std::size_t r = 0; r < 4; ++r) {
    worker::model::dequantize_row(ggml_type::f32, s.w.row(r), row.data(), 32);
    double sum = 0;
    for (float v : row) sum += v;
    CHECK(y[r] == Approx(10.0 + sum).margin(1e-4));
  }
}

TEST_CASE("dot_f32 handles lengths that are not a multiple of its 8 lanes", "[matmul]") {
  std::vector<float> a(13), b(13);
  double ref = 0;
  for (int i = 0; i < 13; ++i) {
    a[i] = static_cast<float>(i + 1);
    b[i] = 0.5f * static_cast<float>(i % 3);
    ref += double(a[i]) * b[i];
  }
  CHECK(worker::cpu::dot_f32(a.data(), b.data(), 13) == Approx(ref));
}

TEST_CASE("weight rows must be whole blocks", "[matmul]") {
  std::vector<std::byte> bytes(1024);
  CHECK_THROWS_AS(worker::cpu::make_weight_matrix(ggml_type::q4_k, bytes.data(), 1, 100), std::invalid_argument);
}
