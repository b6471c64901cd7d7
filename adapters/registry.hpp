// Architecture adapters: each architecture is one file (qwen2.cpp, gpt_oss.cpp) with its own hparams and
// weight structs that turns a GGUF file into a decoder_model. The registry maps general.architecture to
// the adapter; registering one is a single line in registry.cpp.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "adapters/decoder.hpp"

namespace worker::model {
class gguf_file;
}

namespace worker::adapters {

// Deliberate model defects, for tests only: each one must make the logits disagree with llama.cpp
// (the mutation check of tests/oracle/logits_compare.mjs). Production code always uses none.
enum class adapter_mutation {
  none,
  rope_interleaved,      // rotate (2i, 2i+1) pairs instead of NEOX (i, i + n/2)
  no_sinks,              // drop gpt-oss attention sinks
  no_sliding_window,     // full causal attention on gpt-oss even layers
  no_yarn,               // plain RoPE (no YaRN ramp, no mscale) on gpt-oss
  no_router_bias,        // drop the gpt-oss router bias
  softmax_before_top_k,  // MoE weights from a softmax over all experts
};

std::string_view to_string(adapter_mutation m);
// Parses the names above ("rope_interleaved", ...); throws std::invalid_argument.
adapter_mutation adapter_mutation_from_string(std::string_view name);

struct adapter_options {
  adapter_mutation mutation = adapter_mutation::none;
};

using adapter_load_fn = decoder_model (*)(const model::gguf_file& file, const adapter_options& options);

struct architecture_adapter {
  std::string_view name;  // general.architecture
  adapter_load_fn load;
};

std::span<const architecture_adapter> registered_architectures();

// Reads general.architecture and runs the matching adapter. Throws model::gguf_error
// (unsupported_architecture naming the registered ones, missing_tensor, bad_shape, ...).
decoder_model load_decoder_model(const model::gguf_file& file, const adapter_options& options = {});

}  // namespace worker::adapters
