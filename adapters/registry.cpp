// The adapter table. To register an architecture, add one X(...) line to WORKER_ARCHITECTURES: the
// function name of its loader (defined in adapters/<name>.cpp) and its general.architecture string.
#include "adapters/registry.hpp"

#include <array>
#include <stdexcept>

#include "model/gguf.hpp"

#define WORKER_ARCHITECTURES(X) \
  X(load_qwen2, "qwen2")        \
  X(load_gpt_oss, "gpt-oss")

namespace worker::adapters {

#define WORKER_DECLARE_LOADER(fn, name) decoder_model fn(const model::gguf_file&, const adapter_options&);
WORKER_ARCHITECTURES(WORKER_DECLARE_LOADER)
#undef WORKER_DECLARE_LOADER

namespace {

#define WORKER_TABLE_ENTRY(fn, name) architecture_adapter{name, &fn},
constexpr architecture_adapter k_adapters[] = {WORKER_ARCHITECTURES(WORKER_TABLE_ENTRY)};
#undef WORKER_TABLE_ENTRY

struct mutation_name {
  adapter_mutation mutation;
  std::string_view name;
};
constexpr std::array<mutation_name, 7> k_mutations{{
    {adapter_mutation::none, "none"},
    {adapter_mutation::rope_interleaved, "rope_interleaved"},
    {adapter_mutation::no_sinks, "no_sinks"},
    {adapter_mutation::no_sliding_window, "no_sliding_window"},
    {adapter_mutation::no_yarn, "no_yarn"},
    {adapter_mutation::no_router_bias, "no_router_bias"},
    {adapter_mutation::softmax_before_top_k, "softmax_before_top_k"},
}};

}  // namespace

std::string_view to_string(adapter_mutation m) {
  for (const auto& e : k_mutations) {
    if (e.mutation == m) return e.name;
  }
  return "?";
}

adapter_mutation adapter_mutation_from_string(std::string_view name) {
  for (const auto& e : k_mutations) {
    if (e.name == name) return e.mutation;
  }
  throw std::invalid_argument("unknown adapter mutation '" + std::string(name) + "'");
}

std::span<const architecture_adapter> registered_architectures() { return k_adapters; }

decoder_model load_decoder_model(const model::gguf_file& file, const adapter_options& options) {
  const auto arch = file.get_string("general.architecture");
  if (!arch) {
    throw model::gguf_error(model::gguf_error_code::missing_key, "general.architecture", 0,
                            "the file names no architecture");
  }
  std::string known;
  for (const auto& a : k_adapters) {
    if (a.name == *arch) return a.load(file, options);
    known += known.empty() ? "" : ", ";
    known += a.name;
  }
  throw model::gguf_error(model::gguf_error_code::unsupported_architecture, "general.architecture",
                          file.find("general.architecture")->offset,
                          "no adapter for architecture '" + std::string(*arch) + "' (registered: " + known + ")");
}

}  // namespace worker::adapters
