// FFN activations, MoE routing and RMSNorm against their formulas (model-facts.md §3.1, §3.3).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "cpu/ffn.hpp"
#include "cpu/norm.hpp"

namespace {
double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
}  // namespace

TEST_CASE("swiglu is silu(gate) * up", "[ffn]") {
  const std::vector<float> g = {-3.0f, -0.5f, 0.0f, 0.7f, 4.0f}, u = {1.0f, 2.0f, 3.0f, -1.5f, 0.25f};
  std::vector<float> out(5);
  worker::cpu::swiglu(g.data(), u.data(), out.data(), 5);
  for (int i = 0; i < 5; ++i) CHECK(out[i] == Approx(g[i] * sigmoid(g[i]) * u[i]).margin(1e-6));
}

TEST_CASE("swiglu_oai clamps the gate from above only and the linear branch both ways, then adds 1", "[ffn]") {
  const worker::cpu::swiglu_oai_params p;  // alpha 1.702, limit 7
  const std::vector<float> g = {10.0f, -10.0f, 2.0f, 7.0f}, u = {-10.0f, 10.0f, 0.5f, -7.5f};
  std::vector<float> out(4);
  worker::cpu::swiglu_oai(p, g.data(), u.data(), out.data(), 4);
  auto expect = [](double x, double y) { return x * sigmoid(1.702 * x) * (y + 1.0); };
  CHECK(out[0] == Approx(expect(7.0, -7.0)));     // gate clamped to 7, up to -7
  CHECK(out[1] == Approx(expect(-10.0, 7.0)));    // gate not clamped from below
  CHECK(out[2] == Approx(expect(2.0, 0.5)));
  CHECK(out[3] == Approx(expect(7.0, -7.0)));
}

TEST_CASE("moe routing takes top-k of the raw logits, then a softmax over the selected", "[ffn][moe]") {
  const std::vector<float> logits = {0.5f, 3.0f, -1.0f, 2.0f, 2.5f, 0.0f, 1.0f, 2.0f};
  worker::cpu::moe_route_params p{8, 4, worker::cpu::moe_gating::softmax_of_top_k};
  std::uint32_t e[4];
  float w[4];
  worker::cpu::moe_route(p, logits.data(), e, w);
  CHECK(e[0] == 1);
  CHECK(e[1] == 4);
  CHECK(e[2] == 3);  // tie 2.0 at experts 3 and 7: the lower index comes first
  CHECK(e[3] == 7);
  const double z = std::exp(3.0) + std::exp(2.5) + 2 * std::exp(2.0);
  CHECK(w[0] == Approx(std::exp(3.0) / z));
  CHECK(w[1] == Approx(std::exp(2.5) / z));
  CHECK(w[0] + w[1] + w[2] + w[3] == Approx(1.0f));

  p.gating = worker::cpu::moe_gating::top_k_of_softmax;
  worker::cpu::moe_route(p, logits.data(), e, w);
  double zall = 0;
  for (float l : logits) zall += std::exp(double(l));
  CHECK(e[0] == 1);
  CHECK(w[0] == Approx(std::exp(3.0) / zall));
  CHECK(w[0] + w[1] + w[2] + w[3] < 0.95f);
}

TEST_CASE("rmsnorm divides by the root mean square and multiplies by the weight", "[norm]") {
  const std::vector<float> x = {1.0f, -2.0f, 3.0f, 0.5f}, w = {1.0f, 0.5f, 2.0f, -1.0f};
  std::vector<float> out(4);
  worker::cpu::rmsnorm({4, 1e-5f}, x.data(), w.data(), out.data());
  const double ms = (1.0 + 4.0 + 9.0 + 0.25) / 4.0;
  const double scale = 1.0 / std::sqrt(ms + 1e-5);
  for (int i = 0; i < 4; ++i) CHECK(out[i] == Approx(x[i] * scale * w[i]).epsilon(1e-6));
}
