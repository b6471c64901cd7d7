// Sampler implementation (see sampler.hpp for the pipeline and its order).
#include "adapters/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

namespace worker::adapters {

namespace {

constexpr std::uint32_t k_philox_m0 = 0xD2511F53u;
constexpr std::uint32_t k_philox_m1 = 0xCD9E8D57u;
constexpr std::uint32_t k_philox_w0 = 0x9E3779B9u;  // golden ratio
constexpr std::uint32_t k_philox_w1 = 0xBB67AE85u;  // sqrt(3) - 1

void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t* hi, std::uint32_t* lo) {
  const std::uint64_t p = std::uint64_t{a} * b;
  *hi = static_cast<std::uint32_t>(p >> 32);
  *lo = static_cast<std::uint32_t>(p);
}

struct candidate {
  token_id id;
  float logit;
};

bool before(const candidate& a, const candidate& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); }

}  // namespace

std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> c, std::array<std::uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    mulhilo(k_philox_m0, c[0], &hi0, &lo0);
    mulhilo(k_philox_m1, c[2], &hi1, &lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    k[0] += k_philox_w0;
    k[1] += k_philox_w1;
  }
  return c;
}

double sampler_uniform(std::uint64_t seed, std::uint64_t position) {
  const auto r = philox4x32({static_cast<std::uint32_t>(position), static_cast<std::uint32_t>(position >> 32), 0u, 0u},
                            {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)});
  const std::uint64_t bits = ((std::uint64_t{r[0]} << 32) | r[1]) >> 11;  // 53 bits
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);        // 2^-53
}

bool penalties_active(const sampling_params& p) {
  return p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
}

void apply_penalties(const sampling_params& p, std::span<float> logits, std::span<const token_id> history) {
  if (!penalties_active(p) || history.empty()) return;
  const std::size_t n = p.penalty_last_n == 0 ? history.size() : std::min<std::size_t>(p.penalty_last_n, history.size());
  std::unordered_map<token_id, std::uint32_t> counts;
  for (const token_id t : history.subspan(history.size() - n)) ++counts[t];
  for (const auto& [token, count] : counts) {
    if (token < 0 || static_cast<std::size_t>(token) >= logits.size()) continue;
    float& l = logits[static_cast<std::size_t>(token)];
    if (p.repetition_penalty != 1.0f) l = l > 0.0f ? l / p.repetition_penalty : l * p.repetition_penalty;
    l -= static_cast<float>(count) * p.frequency_penalty + p.presence_penalty;
  }
}

token_id argmax(std::span<const float> logits) {
  std::size_t best = 0;
  for (std::size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<token_id>(best);
}

std::vector<token_probability> sampling_distribution(const sampling_params& p, std::span<const float> logits) {
  std::vector<candidate> c;
  c.reserve(logits.size());
  for (std::size_t i = 0; i < logits.size(); ++i) {
    if (std::isfinite(logits[i])) c.push_back({static_cast<token_id>(i), logits[i]});
  }
  if (c.empty()) return {};

  // Steps 3-4 need the descending order; without them the draw walks token ids in ascending order.
  const bool sorted = p.top_k > 0 || p.top_p < 1.0f;
  if (p.top_k > 0 && p.top_k < c.size()) {
    std::nth_element(c.begin(), c.begin() + p.top_k - 1, c.end(), before);
    c.resize(p.top_k);
  }
  if (sorted) std::sort(c.begin(), c.end(), before);

  float l_max = c.front().logit;
  for (const auto& e : c) l_max = std::max(l_max, e.logit);

  if (p.top_p < 1.0f || p.min_p > 0.0f) {
    // Temperature-1 probabilities of the kept tokens.
    double sum = 0.0;
    for (const auto& e : c) sum += std::exp(static_cast<double>(e.logit) - l_max);
    if (p.top_p < 1.0f) {
      double cum = 0.0;
      std::size_t keep = 0;
      while (keep < c.size()) {
        cum += std::exp(static_cast<double>(c[keep].logit) - l_max) / sum;
        ++keep;
        if (cum >= p.top_p) break;
      }
      c.resize(keep);
    }
    if (p.min_p > 0.0f) {
      // p >= min_p · p_max  <=>  l - l_max >= ln(min_p)
      const double floor = std::log(static_cast<double>(p.min_p));
      std::erase_if(c, [&](const candidate& e) { return static_cast<double>(e.logit) - l_max < floor; });
    }
  }

  std::vector<token_probability> out(c.size());
  double sum = 0.0;
  const double inv_t = 1.0 / static_cast<double>(p.temperature);
  for (std::size_t i = 0; i < c.size(); ++i) {
    out[i] = {c[i].id, std::exp((static_cast<double>(c[i].logit) - l_max) * inv_t)};
    sum += out[i].p;
  }
  for (auto& e : out) e.p /= sum;
  return out;
}

token_id sample_token(const sampling_params& p, std::span<const float> logits, std::span<const token_id> history,
                      std::uint64_t position) {
  std::vector<float> l(logits.begin(), logits.end());
  apply_penalties(p, l, history);
  if (p.temperature <= 0.0f) return argmax(l);
  const auto dist = sampling_distribution(p, l);
  if (dist.empty()) {
    throw engine_error(engine_error_code::invalid_argument, "no finite logit to sample from");
  }
  const double u = sampler_uniform(p.seed, position);
  double cum = 0.0;
  for (const auto& e : dist) {
    cum += e.p;
    if (u < cum) return e.token;
  }
  return dist.back().token;  // u within rounding of 1
}

}  // namespace worker::adapters
