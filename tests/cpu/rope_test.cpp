// RoPE: NEOX pairing, angles against a double-precision formula, YaRN correction range and ramp as
// model-facts.md §3.5 states them for gpt-oss, and the YaRN magnitude factor.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "cpu/rope.hpp"

using worker::cpu::rope_params;
using worker::cpu::rope_style;

namespace {

rope_params qwen_like(std::uint32_t n_dims) {
  rope_params p;
  p.n_dims = n_dims;
  p.freq_base = 1000000.0f;
  return p;
}

rope_params gpt_oss_like() {
  rope_params p;
  p.n_dims = 64;
  p.freq_base = 150000.0f;
  p.freq_scale = 1.0f / 32.0f;
  p.ext_factor = 1.0f;
  p.n_ctx_orig = 4096;
  p.beta_fast = 32.0f;
  p.beta_slow = 1.0f;
  return p;
}

}  // namespace

TEST_CASE("rope at position 0 leaves vectors unchanged", "[rope]") {
  std::vector<float> x(64);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) - 20.5f;
  auto y = x;
  worker::cpu::rope_heads(qwen_like(32), 0, y.data(), 2, 32);
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(y[i] == x[i]);
}

TEST_CASE("NEOX rotates element i with element i + n_dims/2, interleaved with its neighbour", "[rope]") {
  rope_params p = qwen_like(8);
  const double theta0 = 5.0;  // pair 0 rotates by pos radians
  std::vector<float> x(8, 0.0f);
  x[0] = 1.0f;
  worker::cpu::rope_heads(p, 5, x.data(), 1, 8);
  CHECK(x[0] == Approx(std::cos(theta0)).margin(1e-6));
  CHECK(x[4] == Approx(std::sin(theta0)).margin(1e-6));  // partner of 0 is 0 + 8/2
  CHECK(x[1] == 0.0f);

  p.style = rope_style::interleaved;
  std::vector<float> y(8, 0.0f);
  y[0] = 1.0f;
  worker::cpu::rope_heads(p, 5, y.data(), 1, 8);
  CHECK(y[0] == Approx(std::cos(theta0)).margin(1e-6));
  CHECK(y[1] == Approx(std::sin(theta0)).margin(1e-6));  // partner of 0 is 1
  CHECK(y[4] == 0.0f);
}

TEST_CASE("rope angles follow pos * base^(-2i/d) without scaling", "[rope]") {
  const rope_params p = qwen_like(128);
  for (const std::int64_t pos : {1, 7, 300, 4000}) {
    std::vector<float> c(64), s(64);
    worker::cpu::rope_angles(p, pos, c.data(), s.data());
    for (std::size_t i = 0; i < 64; ++i) {
      const double theta = static_cast<double>(pos) * std::pow(1e6, -2.0 * static_cast<double>(i) / 128.0);
      // The fp32 repeated product drifts by a few ulps per pair: allow 2e-6 relative angle error.
      const double tol = 2e-6 * std::abs(theta) + 1e-6;
      CHECK(c[i] == Approx(std::cos(theta)).margin(tol));
      CHECK(s[i] == Approx(std::sin(theta)).margin(tol));
    }
  }
}

TEST_CASE("rope preserves vector norms when no magnitude factor applies", "[rope]") {
  std::vector<float> x(4 * 32);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i) * 1.7f);
  const auto norm = [](const float* v) {
    double n = 0;
    for (int i = 0; i < 32; ++i) n += double(v[i]) * v[i];
    return std::sqrt(n);
  };
  std::vector<double> before;
  for (int h = 0; h < 4; ++h) before.push_back(norm(x.data() + h * 32));
  worker::cpu::rope_heads(qwen_like(32), 123, x.data(), 4, 32);
  for (int h = 0; h < 4; ++h) CHECK(norm(x.data() + h * 32) == Approx(before[h]).epsilon(1e-6));
}

TEST_CASE("YaRN correction range for gpt-oss is pairs 8..18 (floor/ceil of 8.09 and 17.40)", "[rope][yarn]") {
  float low = 0, high = 0;
  worker::cpu::rope_yarn_corr_dims(gpt_oss_like(), &low, &high);
  CHECK(low == 8.0f);
  CHECK(high == 18.0f);
}

TEST_CASE("YaRN keeps low pairs, divides high pairs by the factor, blends between, scales by 1+0.1 ln 32",
          "[rope][yarn]") {
  const rope_params p = gpt_oss_like();
  const std::int64_t pos = 1000;
  std::vector<float> c(32), s(32);
  worker::cpu::rope_angles(p, pos, c.data(), s.data());
  const double m = 1.0 + 0.1 * std::log(32.0);
  CHECK(m == Approx(1.3465736).epsilon(1e-7));
  for (std::size_t i = 0; i < 32; ++i) {
    const double extrap = static_cast<double>(pos) * std::pow(150000.0, -2.0 * static_cast<double>(i) / 64.0);
    const double interp = extrap / 32.0;
    const double y = (static_cast<double>(i) - 8.0) / 10.0;
    const double ramp = 1.0 - std::min(1.0, std::max(0.0, y));
    const double theta = interp * (1.0 - ramp) + extrap * ramp;
    if (i <= 8) CHECK(theta == Approx(extrap));
    if (i >= 18) CHECK(theta == Approx(interp));
    const double tol = 4e-6 * std::abs(theta) + 1e-6;
    CHECK(c[i] == Approx(m * std::cos(theta)).margin(tol));
    CHECK(s[i] == Approx(m * std::sin(theta)).margin(tol));
  }
}
