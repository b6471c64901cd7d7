// Architecture detection and typed hyperparameters read from GGUF metadata (model-facts.md §1.5, §2),
// with the defaults llama.cpp applies when a key is absent. Adapters take these structs; nothing else
// reads `<arch>.*` keys.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace worker::model {

class gguf_file;

enum class architecture { qwen2, gpt_oss };

std::string_view to_string(architecture arch);  // the general.architecture string
// The architectures this build knows, as general.architecture strings ("qwen2, gpt-oss").
std::string supported_architectures();
// Reads general.architecture. Throws gguf_error(unsupported_architecture) listing the supported ones, or
// missing_key.
architecture detect_architecture(const gguf_file& file);

enum class rope_scaling_type { none, linear, yarn };
std::string_view to_string(rope_scaling_type type);

// RoPE parameters as ggml consumes them (NEOX style for both our architectures).
struct rope_params {
  std::uint32_t n_rot = 0;          // rotated dims per head (rope.dimension_count, default head_dim)
  float freq_base = 10000.0f;       // θ base
  rope_scaling_type scaling = rope_scaling_type::none;
  float freq_scale = 1.0f;          // 1 / rope.scaling.factor
  std::uint32_t n_ctx_orig = 0;     // YaRN original context (rope.scaling.original_context_length)
  float yarn_beta_fast = 32.0f;     // llama.cpp defaults; not read from gpt-oss files (model-facts §1.5)
  float yarn_beta_slow = 1.0f;
  // YaRN attention temperature applied to cos/sin: 1 + 0.1·ln(1/freq_scale) when scaling is yarn, else 1
  // (llama.cpp's attn_factor cancels to 1, model-facts §3.5).
  float yarn_mscale() const;
};

// Shared by both architectures.
struct transformer_hparams {
  std::uint32_t n_ctx_train = 0;  // context_length
  std::uint32_t n_embd = 0;       // embedding_length (d_model)
  std::uint32_t n_layer = 0;      // block_count
  std::uint32_t n_head = 0;       // attention.head_count
  std::uint32_t n_head_kv = 0;    // attention.head_count_kv (default n_head)
  std::uint32_t head_dim_k = 0;   // attention.key_length (default n_embd / n_head)
  std::uint32_t head_dim_v = 0;   // attention.value_length (default n_embd / n_head)
  float rms_eps = 0.0f;           // attention.layer_norm_rms_epsilon
  std::uint32_t vocab_size = 0;   // rows of token_embd (tokenizer.ggml.tokens may be shorter)
  rope_params rope;
};

struct qwen2_hparams {
  transformer_hparams base;
  std::uint32_t n_ff = 0;  // feed_forward_length (dense SwiGLU width)
};

struct gpt_oss_hparams {
  transformer_hparams base;
  std::uint32_t n_expert = 0;          // expert_count
  std::uint32_t n_expert_used = 0;     // expert_used_count (top-k)
  std::uint32_t n_ff_exp = 0;          // expert_feed_forward_length
  std::uint32_t n_swa = 0;             // attention.sliding_window
  std::uint32_t swa_pattern = 2;       // attention.sliding_window_pattern: layer il is SWA iff il % pattern < pattern-1
  bool layer_is_swa(std::uint32_t il) const { return swa_pattern > 0 && il % swa_pattern < swa_pattern - 1; }
};

using model_hparams = std::variant<qwen2_hparams, gpt_oss_hparams>;

// Reads the hyperparameters of the file's architecture; throws gguf_error (missing_key, metadata_type,
// bad_shape when values are inconsistent, unsupported_architecture).
model_hparams read_hparams(const gguf_file& file);
qwen2_hparams read_qwen2_hparams(const gguf_file& file);
gpt_oss_hparams read_gpt_oss_hparams(const gguf_file& file);

const transformer_hparams& base_of(const model_hparams& hp);

// Bytes of an f16 KV cache holding `n_ctx` positions for one sequence (K and V, all layers).
// gpt-oss sliding-window layers only keep n_swa positions.
std::uint64_t kv_cache_bytes_f16(const model_hparams& hp, std::uint64_t n_ctx);

}  // namespace worker::model
