// The synthetic model generator: writes a GGUF with a preset's exact tensor names, shapes and types,
// seeded random weights (synth_values.hpp), all hyperparameter keys the real file has, and the real
// tokenizer imported from a HF tokenizer.json. Quantization runs on a pool of threads over chunks of
// rows while one thread streams finished chunks to disk in file order, so memory stays bounded (a few
// MiB per thread) and the output is bit-identical for any thread count.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "model/synth/synth_preset.hpp"
#include "model/tokenizer_vocab.hpp"

namespace worker::model::synth {

struct synth_options {
  std::string preset;                   // synth_presets() name
  std::string weights;                  // scheme; empty = the preset's default (first) scheme
  std::filesystem::path tokenizer_json; // HF tokenizer.json (tokenizer_config.json beside it is read too)
  std::uint64_t seed = 0;
  std::filesystem::path out;
  unsigned threads = 0;                 // 0 = std::thread::hardware_concurrency()
  bool chat_template = true;            // copy the package's chat template (informational) into the file
  std::FILE* progress = nullptr;        // progress lines go here when set (stderr in the CLI)
};

struct synth_result {
  std::uint64_t file_bytes = 0;
  std::size_t n_tensors = 0;
  std::size_t n_kv = 0;
  double seconds = 0;
};

// Imports the tokenizer for `preset` and checks it fits the preset's layout (row count, special ids
// holding the expected texts). Throws hf_import_error / std::runtime_error naming what does not fit.
tokenizer_vocab synth_import_tokenizer(const synth_preset& preset, const std::filesystem::path& tokenizer_json);

// Writes the file (first to `out` + ".partial", renamed on success; removed on failure).
// Throws std::invalid_argument for bad options, and the writer's/importer's errors otherwise.
synth_result synth_generate(const synth_options& options);

}  // namespace worker::model::synth
