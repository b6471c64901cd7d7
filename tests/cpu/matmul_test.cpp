// Matmul over stored rows of every supported type: values against a double-precision sum over the
// dequantized weights, and the determinism contract (thread count and batch composition change nothing,
// bit for bit).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>
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

// The numerics-study rounding modes (cpu/activation_rounding.hpp, engine_eval --rounding): each stays
// within its format's error bound and matmul applies it to the activations only.
TEST_CASE("study rounding modes stay within their formats' bounds and reach the matmul", "[matmul][rounding]") {
  using worker::cpu::activation_rounding;
  const std::size_t n = 256;
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(n);
  for (auto& v : x) v = nd(rng);
  x[7] = 0.0f;
  x[40] *= 50.0f;  // an outlier in the second block of 32
  auto rounded = [&](activation_rounding mode, ggml_type type) {
    std::vector<float> r = x;
    worker::cpu::round_activations(mode, type, r.data(), n);
    return r;
  };
  // Bound per block of 32 as a fraction of the block's max |x| (fp16: of |x| itself).
  auto check_bound = [&](const std::vector<float>& r, double per_amax, double per_value) {
    double worst = 0;
    for (std::size_t b = 0; b < n; b += 32) {
      float amax = 0;
      for (std::size_t i = 0; i < 32; ++i) amax = std::max(amax, std::abs(x[b + i]));
      for (std::size_t i = 0; i < 32; ++i) {
        const double err = std::abs(double(r[b + i]) - x[b + i]);
        REQUIRE(err <= per_amax * amax + per_value * std::abs(x[b + i]) + 6e-8);  // (fp16 subnormals: 2^-25)
        worst = std::max(worst, err);
      }
    }
    return worst;
  };
  CHECK(rounded(activation_rounding::exact, ggml_type::q4_k) == x);
  CHECK(rounded(activation_rounding::q8_two_level, ggml_type::f32) == x);  // F32 weights: nothing rounded
  const auto two = rounded(activation_rounding::q8_two_level, ggml_type::q4_k);
  const auto one = rounded(activation_rounding::q8_one_level, ggml_type::q8_0);
  const auto half = rounded(activation_rounding::fp16, ggml_type::q6_k);
  // Two levels: |error| ≤ d_lo/2 ≤ max|x|/64516 (gpu/q8_act.cuh); one level: ≤ d_hi/2 = max|x|/254;
  // fp16: ≤ 2^-11 |x| (normal range). Float rounding of d·q adds a few ulps: 1 % slack.
  const double e2 = check_bound(two, 1.01 / 64516.0, 0), e1 = check_bound(one, 1.01 / 254.0, 0);
  const double eh = check_bound(half, 0, 1.0 / 2048.0);
  CHECK(e2 > 0.0);
  CHECK(e1 > 50 * e2);  // the second level is what the two-level format adds
  CHECK(eh > 0.0);
  CHECK(two[7] == 0.0f);
  CHECK(one[7] == 0.0f);
  CHECK_THROWS_AS(worker::cpu::round_activations(activation_rounding::q8_two_level, ggml_type::q4_k, x.data(), 48),
                  std::invalid_argument);

  // matmul with a mode = exact matmul of the rounded activations, bit for bit.
  const stored s = make_weights(ggml_type::q4_k, 9, n, 23);
  for (const activation_rounding mode :
       {activation_rounding::q8_two_level, activation_rounding::q8_one_level, activation_rounding::fp16}) {
    std::vector<float> y(9, 0.0f);
    worker::cpu::matmul_args a;
    a.w = &s.w;
    a.x = x.data();
    a.x_stride = n;
    a.n_tokens = 1;
    a.y = y.data();
    a.y_stride = 9;
    a.rounding = mode;
    worker::cpu::matmul(a, nullptr);
    CHECK(y == run(s.w, rounded(mode, ggml_type::q4_k), 1, nullptr));
    CHECK(y != run(s.w, x, 1, nullptr));
  }
}
