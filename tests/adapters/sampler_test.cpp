// Sampler: the counter-based generator (Philox known answers, uniformity), greedy, the filtered
// distribution against an independent computation, draw frequencies against it, seed reproducibility,
// and the penalties as sampler.hpp documents them.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <vector>

#include "adapters/sampler.hpp"

using worker::adapters::sampling_params;
using worker::adapters::token_id;

TEST_CASE("philox4x32-10 reproduces the Random123 known-answer vectors", "[sampler][rng]") {
  using worker::adapters::philox4x32;
  CHECK(philox4x32({0, 0, 0, 0}, {0, 0}) == std::array<std::uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  CHECK(philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu}) ==
        std::array<std::uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  CHECK(philox4x32({0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, {0xa4093822u, 0x299f31d0u}) ==
        std::array<std::uint32_t, 4>{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("uniform draws lie in [0, 1), look uniform, and depend on seed and position only", "[sampler][rng]") {
  const int n = 100000;
  std::vector<int> bins(10, 0);
  double sum = 0;
  for (int i = 0; i < n; ++i) {
    const double u = worker::adapters::sampler_uniform(42, static_cast<std::uint64_t>(i));
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum += u;
    ++bins[static_cast<int>(u * 10)];
  }
  CHECK(sum / n == Approx(0.5).margin(0.005));
  for (int b : bins) CHECK(std::abs(b - n / 10) < 5 * std::sqrt(n / 10.0));  // within 5 sigma
  CHECK(worker::adapters::sampler_uniform(42, 17) == worker::adapters::sampler_uniform(42, 17));
  CHECK(worker::adapters::sampler_uniform(42, 17) != worker::adapters::sampler_uniform(43, 17));
  CHECK(worker::adapters::sampler_uniform(42, 17) != worker::adapters::sampler_uniform(42, 18));
  // Positions past 2^32 use the counter's high word.
  CHECK(worker::adapters::sampler_uniform(42, 1ull << 32) != worker::adapters::sampler_uniform(42, 0));
}

TEST_CASE("temperature 0 is greedy: the largest logit, lowest id on ties, whatever the seed", "[sampler]") {
  const std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
  sampling_params p;
  p.temperature = 0.0f;
  for (std::uint64_t seed : {0ull, 1ull, 99ull}) {
    p.seed = seed;
    CHECK(worker::adapters::sample_token(p, logits, {}, 5) == 1);
  }
}

namespace {

// The filtered distribution written out directly from the documented pipeline (no shared code).
std::map<token_id, double> expected_distribution(const std::vector<float>& logits, const sampling_params& p) {
  std::vector<std::pair<double, token_id>> c;
  for (std::size_t i = 0; i < logits.size(); ++i) c.push_back({logits[i], static_cast<token_id>(i)});
  std::sort(c.begin(), c.end(), [](auto a, auto b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  if (p.top_k > 0 && p.top_k < c.size()) c.resize(p.top_k);
  const double lmax = c[0].first;
  double z = 0;
  for (auto& e : c) z += std::exp(e.first - lmax);
  if (p.top_p < 1.0f) {
    double cum = 0;
    std::size_t keep = 0;
    while (keep < c.size()) {
      cum += std::exp(c[keep].first - lmax) / z;
      ++keep;
      if (cum >= p.top_p) break;
    }
    c.resize(keep);
  }
  if (p.min_p > 0.0f) {
    std::vector<std::pair<double, token_id>> kept;
    for (auto& e : c) {
      if (std::exp(e.first - lmax) >= p.min_p) kept.push_back(e);  // p/p_max >= min_p
    }
    c = kept;
  }
  std::map<token_id, double> out;
  double zt = 0;
  for (auto& e : c) zt += std::exp((e.first - lmax) / p.temperature);
  for (auto& e : c) out[e.second] = std::exp((e.first - lmax) / p.temperature) / zt;
  return out;
}

const std::vector<float> k_logits = {1.0f, 3.2f, -0.5f, 2.9f, 0.4f, 2.0f, -3.0f, 1.7f, 2.5f, 0.0f};

}  // namespace

TEST_CASE("the filtered distribution applies top-k, top-p, min-p, then temperature", "[sampler]") {
  for (const auto& [k, top_p, min_p, t] : std::vector<std::tuple<std::uint32_t, float, float, float>>{
           {0, 1.0f, 0.0f, 1.0f}, {4, 1.0f, 0.0f, 0.7f}, {0, 0.8f, 0.0f, 1.3f}, {0, 1.0f, 0.3f, 1.0f}, {6, 0.9f, 0.1f, 0.5f}}) {
    sampling_params p;
    p.top_k = k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.temperature = t;
    INFO("top_k " << k << " top_p " << top_p << " min_p " << min_p << " T " << t);
    const auto expected = expected_distribution(k_logits, p);
    const auto got = worker::adapters::sampling_distribution(p, k_logits);
    REQUIRE(got.size() == expected.size());
    double total = 0;
    for (const auto& e : got) {
      REQUIRE(expected.count(e.token) == 1);
      CHECK(e.p == Approx(expected.at(e.token)).epsilon(1e-9));
      total += e.p;
    }
    CHECK(total == Approx(1.0));
  }
}

TEST_CASE("many draws follow the filtered probabilities and never pick a filtered-out token", "[sampler]") {
  sampling_params p;
  p.temperature = 0.8f;
  p.top_k = 6;
  p.top_p = 0.95f;
  p.seed = 1234;
  const auto expected = expected_distribution(k_logits, p);
  const int n = 200000;
  std::map<token_id, int> counts;
  for (int pos = 0; pos < n; ++pos) ++counts[worker::adapters::sample_token(p, k_logits, {}, static_cast<std::uint64_t>(pos))];
  double chi2 = 0;
  for (const auto& [token, c] : counts) {
    REQUIRE(expected.count(token) == 1);  // only kept tokens are ever drawn
  }
  for (const auto& [token, prob] : expected) {
    const double e = prob * n;
    const double o = counts.count(token) ? counts.at(token) : 0;
    chi2 += (o - e) * (o - e) / e;
    CHECK(std::abs(o - e) < 5 * std::sqrt(e));  // each frequency within 5 sigma
  }
  // Degrees of freedom = kept - 1 (at most 5 here); 30 is far past the 0.9999 quantile.
  CHECK(chi2 < 30.0);
}

TEST_CASE("the same seed and position give the same token; other seeds give other sequences", "[sampler]") {
  sampling_params p;
  p.temperature = 1.0f;
  auto run = [&](std::uint64_t seed) {
    p.seed = seed;
    std::vector<token_id> v;
    for (std::uint64_t pos = 0; pos < 64; ++pos) v.push_back(worker::adapters::sample_token(p, k_logits, {}, pos));
    return v;
  };
  CHECK(run(7) == run(7));
  CHECK(run(7) != run(8));
}

TEST_CASE("repetition penalty divides positive and multiplies negative logits of seen tokens", "[sampler][penalty]") {
  sampling_params p;
  p.repetition_penalty = 2.0f;
  std::vector<float> l = {4.0f, -4.0f, 1.0f, 3.0f};
  const std::vector<token_id> history = {0, 1, 0};
  worker::adapters::apply_penalties(p, l, history);
  CHECK(l[0] == 2.0f);   // seen twice: penalized once (CTRL style is per distinct token)
  CHECK(l[1] == -8.0f);
  CHECK(l[2] == 1.0f);   // unseen
  CHECK(l[3] == 3.0f);
}

TEST_CASE("frequency and presence penalties subtract count·f + p from seen tokens", "[sampler][penalty]") {
  sampling_params p;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  std::vector<float> l = {1.0f, 1.0f, 1.0f};
  const std::vector<token_id> history = {2, 0, 2, 2};
  worker::adapters::apply_penalties(p, l, history);
  CHECK(l[0] == Approx(1.0f - 0.5f - 0.25f));
  CHECK(l[1] == 1.0f);
  CHECK(l[2] == Approx(1.0f - 1.5f - 0.25f));
}

TEST_CASE("penalties look only at the last penalty_last_n tokens (0: all)", "[sampler][penalty]") {
  sampling_params p;
  p.presence_penalty = 1.0f;
  p.penalty_last_n = 2;
  const std::vector<token_id> history = {0, 1, 2};
  std::vector<float> l = {0.0f, 0.0f, 0.0f};
  worker::adapters::apply_penalties(p, l, history);
  CHECK(l == std::vector<float>{0.0f, -1.0f, -1.0f});
  p.penalty_last_n = 0;
  l = {0.0f, 0.0f, 0.0f};
  worker::adapters::apply_penalties(p, l, history);
  CHECK(l == std::vector<float>{-1.0f, -1.0f, -1.0f});
}

TEST_CASE("penalties change the greedy choice through the full pipeline", "[sampler][penalty]") {
  sampling_params p;
  p.temperature = 0.0f;
  p.repetition_penalty = 1.5f;
  const std::vector<float> logits = {3.0f, 2.5f};
  const std::vector<token_id> history = {0};
  CHECK(worker::adapters::sample_token(p, logits, {}, 1) == 0);
  CHECK(worker::adapters::sample_token(p, logits, history, 1) == 1);  // 3/1.5 = 2 < 2.5
}
