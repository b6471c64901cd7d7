// Reads <arch>.* keys into typed structs. Defaults mirror llama.cpp's loader (src/llama-model.cpp,
// src/llama-hparams.h) so a file llama.cpp accepts gives the same numbers here.
#include "model/hparams.hpp"

#include <cmath>

#include "model/gguf.hpp"

namespace worker::model {
namespace {

struct arch_entry {
  architecture arch;
  std::string_view name;
};
constexpr arch_entry k_architectures[] = {{architecture::qwen2, "qwen2"}, {architecture::gpt_oss, "gpt-oss"}};

std::string key(architecture arch, std::string_view suffix) { return std::string(to_string(arch)) + "." + std::string(suffix); }

std::uint32_t require_u32(const gguf_file& f, const std::string& k) {
  const auto v = f.get_uint(k);
  if (!v) {
    throw gguf_error(gguf_error_code::missing_key, k, 0, "required hyperparameter is absent");
  }
  if (*v > UINT32_MAX) throw gguf_error(gguf_error_code::metadata_type, k, f.find(k)->offset, "value exceeds u32");
  return static_cast<std::uint32_t>(*v);
}

std::uint32_t optional_u32(const gguf_file& f, const std::string& k, std::uint32_t fallback) {
  const auto v = f.get_uint(k);
  if (!v) return fallback;
  if (*v > UINT32_MAX) throw gguf_error(gguf_error_code::metadata_type, k, f.find(k)->offset, "value exceeds u32");
  return static_cast<std::uint32_t>(*v);
}

void require_positive(std::uint32_t v, const std::string& k) {
  if (v == 0) throw gguf_error(gguf_error_code::bad_shape, k, 0, "must be positive");
}

transformer_hparams read_base(const gguf_file& f, architecture arch) {
  transformer_hparams hp;
  hp.n_ctx_train = require_u32(f, key(arch, "context_length"));
  hp.n_embd = require_u32(f, key(arch, "embedding_length"));
  hp.n_layer = require_u32(f, key(arch, "block_count"));
  hp.n_head = require_u32(f, key(arch, "attention.head_count"));
  require_positive(hp.n_ctx_train, key(arch, "context_length"));
  require_positive(hp.n_embd, key(arch, "embedding_length"));
  require_positive(hp.n_layer, key(arch, "block_count"));
  require_positive(hp.n_head, key(arch, "attention.head_count"));
  hp.n_head_kv = optional_u32(f, key(arch, "attention.head_count_kv"), hp.n_head);
  require_positive(hp.n_head_kv, key(arch, "attention.head_count_kv"));
  if (hp.n_head % hp.n_head_kv != 0) {
    throw gguf_error(gguf_error_code::bad_shape, key(arch, "attention.head_count_kv"), 0,
                     "head_count " + std::to_string(hp.n_head) + " is not a multiple of head_count_kv " +
                         std::to_string(hp.n_head_kv));
  }
  const std::uint32_t default_head_dim = hp.n_embd / hp.n_head;
  hp.head_dim_k = optional_u32(f, key(arch, "attention.key_length"), default_head_dim);
  hp.head_dim_v = optional_u32(f, key(arch, "attention.value_length"), default_head_dim);
  require_positive(hp.head_dim_k, key(arch, "attention.key_length"));
  require_positive(hp.head_dim_v, key(arch, "attention.value_length"));
  const auto eps_key = key(arch, "attention.layer_norm_rms_epsilon");
  const auto eps = f.get_float(eps_key);
  if (!eps) throw gguf_error(gguf_error_code::missing_key, eps_key, 0, "required hyperparameter is absent");
  hp.rms_eps = static_cast<float>(*eps);

  // Vocabulary: rows of the embedding (ne[1]); tokenizer.ggml.tokens may list fewer entries.
  const gguf_tensor_info* embd = f.find_tensor("token_embd.weight");
  if (!embd) throw gguf_error(gguf_error_code::missing_tensor, "token_embd.weight", 0, "the embedding is absent");
  if (embd->n_dims != 2 || embd->ne[0] != hp.n_embd) {
    throw gguf_error(gguf_error_code::bad_shape, "token_embd.weight", embd->info_offset,
                     "expected ne = [" + std::to_string(hp.n_embd) + ", vocab]");
  }
  hp.vocab_size = static_cast<std::uint32_t>(embd->ne[1]);

  rope_params& r = hp.rope;
  r.n_rot = optional_u32(f, key(arch, "rope.dimension_count"), hp.head_dim_k);
  if (r.n_rot == 0 || r.n_rot > hp.head_dim_k || r.n_rot % 2 != 0) {
    throw gguf_error(gguf_error_code::bad_shape, key(arch, "rope.dimension_count"), 0,
                     "must be even and at most the head dimension");
  }
  r.freq_base = static_cast<float>(f.get_float(key(arch, "rope.freq_base")).value_or(10000.0));
  const auto scaling = f.get_string(key(arch, "rope.scaling.type"));
  const double factor = f.get_float(key(arch, "rope.scaling.factor")).value_or(0.0);
  if (!scaling || *scaling == "none") {
    r.scaling = rope_scaling_type::none;
  } else if (*scaling == "linear") {
    r.scaling = rope_scaling_type::linear;
  } else if (*scaling == "yarn") {
    r.scaling = rope_scaling_type::yarn;
  } else {
    const gguf_kv* kv = f.find(key(arch, "rope.scaling.type"));
    throw gguf_error(gguf_error_code::metadata_type, key(arch, "rope.scaling.type"), kv->offset,
                     "unsupported rope scaling '" + std::string(*scaling) + "' (none, linear, yarn)");
  }
  // llama.cpp: freq_scale = 1/factor when a factor is given, else 1 (a linear factor of 1 is no scaling).
  r.freq_scale = factor > 0.0 ? static_cast<float>(1.0 / factor) : 1.0f;
  if (r.scaling == rope_scaling_type::linear && r.freq_scale == 1.0f) r.scaling = rope_scaling_type::none;
  r.n_ctx_orig = optional_u32(f, key(arch, "rope.scaling.original_context_length"), hp.n_ctx_train);
  return hp;
}

}  // namespace

std::string_view to_string(architecture arch) {
  for (const auto& e : k_architectures) {
    if (e.arch == arch) return e.name;
  }
  return "?";
}

std::string supported_architectures() {
  std::string s;
  for (const auto& e : k_architectures) {
    if (!s.empty()) s += ", ";
    s += e.name;
  }
  return s;
}

architecture detect_architecture(const gguf_file& file) {
  const auto name = file.get_string("general.architecture");
  if (!name) throw gguf_error(gguf_error_code::missing_key, "general.architecture", 0, "the file names no architecture");
  for (const auto& e : k_architectures) {
    if (e.name == *name) return e.arch;
  }
  throw gguf_error(gguf_error_code::unsupported_architecture, "general.architecture",
                   file.find("general.architecture")->offset,
                   "architecture '" + std::string(*name) + "' is not supported (supported: " + supported_architectures() + ")");
}

std::string_view to_string(rope_scaling_type type) {
  switch (type) {
    case rope_scaling_type::none: return "none";
    case rope_scaling_type::linear: return "linear";
    case rope_scaling_type::yarn: return "yarn";
  }
  return "?";
}

float rope_params::yarn_mscale() const {
  if (scaling != rope_scaling_type::yarn || freq_scale >= 1.0f) return 1.0f;
  return 1.0f + 0.1f * std::log(1.0f / freq_scale);
}

qwen2_hparams read_qwen2_hparams(const gguf_file& file) {
  qwen2_hparams hp;
  hp.base = read_base(file, architecture::qwen2);
  hp.n_ff = require_u32(file, key(architecture::qwen2, "feed_forward_length"));
  require_positive(hp.n_ff, key(architecture::qwen2, "feed_forward_length"));
  return hp;
}

gpt_oss_hparams read_gpt_oss_hparams(const gguf_file& file) {
  const architecture a = architecture::gpt_oss;
  gpt_oss_hparams hp;
  hp.base = read_base(file, a);
  hp.n_expert = require_u32(file, key(a, "expert_count"));
  hp.n_expert_used = require_u32(file, key(a, "expert_used_count"));
  require_positive(hp.n_expert, key(a, "expert_count"));
  if (hp.n_expert_used == 0 || hp.n_expert_used > hp.n_expert) {
    throw gguf_error(gguf_error_code::bad_shape, key(a, "expert_used_count"), 0, "must be in 1..expert_count");
  }
  hp.n_ff_exp = require_u32(file, key(a, "expert_feed_forward_length"));
  require_positive(hp.n_ff_exp, key(a, "expert_feed_forward_length"));
  hp.n_swa = optional_u32(file, key(a, "attention.sliding_window"), 0);
  hp.swa_pattern = optional_u32(file, key(a, "attention.sliding_window_pattern"), 2);
  return hp;
}

model_hparams read_hparams(const gguf_file& file) {
  switch (detect_architecture(file)) {
    case architecture::qwen2: return read_qwen2_hparams(file);
    case architecture::gpt_oss: return read_gpt_oss_hparams(file);
  }
  throw gguf_error(gguf_error_code::unsupported_architecture, "general.architecture", 0, "unreachable");
}

const transformer_hparams& base_of(const model_hparams& hp) {
  return std::visit([](const auto& h) -> const transformer_hparams& { return h.base; }, hp);
}

std::uint64_t kv_cache_bytes_f16(const model_hparams& hp, std::uint64_t n_ctx) {
  const transformer_hparams& b = base_of(hp);
  const std::uint64_t per_pos_layer = std::uint64_t{b.n_head_kv} * (b.head_dim_k + b.head_dim_v) * 2;
  // Sliding-window layers keep only n_swa positions; counted arithmetically (n_layer comes from the file).
  std::uint64_t swa_layers = 0;
  std::uint64_t swa_positions = n_ctx;
  if (const auto* g = std::get_if<gpt_oss_hparams>(&hp); g && g->n_swa > 0 && g->swa_pattern > 0) {
    const std::uint64_t p = g->swa_pattern;
    swa_layers = b.n_layer / p * (p - 1) + std::min<std::uint64_t>(b.n_layer % p, p - 1);
    swa_positions = std::min<std::uint64_t>(n_ctx, g->n_swa);
  }
  const std::uint64_t full_layers = b.n_layer - swa_layers;
  return (full_layers * n_ctx + swa_layers * swa_positions) * per_pos_layer;
}

}  // namespace worker::model
