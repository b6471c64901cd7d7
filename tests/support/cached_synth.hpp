// Shared by every test that needs a synthetic model: generates it with the project's generator into a
// cache file and reuses that file only while it is newer than the running test binary. A rebuilt binary
// may carry a changed generator, and a stale model would silently test the old one. The file is written
// under a per-process name and renamed into place, so tests running in parallel never read a
// half-written model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>

#include <unistd.h>

#include "model/synth/synth_generator.hpp"

namespace worker::test {

inline std::filesystem::path cached_synth_model(const std::filesystem::path& out, const std::string& preset,
                                                const std::string& weights, const std::filesystem::path& tokenizer_json,
                                                std::uint64_t seed, unsigned threads = 0) {
  namespace fs = std::filesystem;
  fs::create_directories(out.parent_path());
  std::error_code ec;
  const auto binary_time = fs::last_write_time("/proc/self/exe", ec);  // follows the link to the binary
  const bool fresh = fs::exists(out) && (ec || fs::last_write_time(out) >= binary_time);
  if (fresh) return out;
  const auto part = fs::path(out.string() + ".part" + std::to_string(::getpid()));
  model::synth::synth_options o;
  o.preset = preset;
  if (!weights.empty()) o.weights = weights;
  o.tokenizer_json = tokenizer_json;
  o.seed = seed;
  o.out = part;
  if (threads != 0) o.threads = threads;
  model::synth::synth_generate(o);
  fs::rename(part, out);
  return out;
}

}  // namespace worker::test
