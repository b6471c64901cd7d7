// The CPU reference engine: runs a decoder_model with the cpu/ ops, fp32 activations, weights read in
// their stored types and dequantized on the fly, and an fp32 KV cache per sequence. Selected explicitly
// (`--device cpu`); never a silent fallback for a missing GPU.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string_view>
#include <memory>

#include "adapters/engine.hpp"
#include "adapters/registry.hpp"
#include "cpu/activation_rounding.hpp"

namespace worker::adapters {

struct cpu_engine_options {
  unsigned n_threads = 0;                     // 0: hardware concurrency
  std::uint32_t max_sequences = 64;           // KV slots open at once
  std::uint64_t kv_budget_bytes = 8ull << 30; // fp32 KV memory over all open sequences
  std::uint32_t max_context = 0;              // per-sequence limit; 0: the model's trained context
  adapter_options adapter;                    // test-only mutations
  // Test/reference only, default off (fp32 activations): round each matmul's activations as llama.cpp's CPU
  // backend does (cpu/activation_rounding.hpp), to compare with llama.cpp exactly (docs/accuracy.md).
  cpu::activation_rounding rounding = cpu::activation_rounding::exact;
  // Diagnostics: observer of named intermediates (adapters/cpu_blocks.hpp, cpu_trace_fn); empty: none.
  std::function<void(std::string_view name, std::size_t layer, std::size_t row, std::span<const float> values)> trace;
};

// Maps the GGUF file, runs its architecture's adapter and returns the engine. Throws model::gguf_error
// for a bad or unsupported file.
std::unique_ptr<engine> open_cpu_engine(const std::filesystem::path& model_path,
                                        const cpu_engine_options& options = {});

}  // namespace worker::adapters
