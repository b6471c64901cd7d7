// Presets of the synthetic model generator: the real models' hyperparameters and tensor layouts
// (model-facts.md §1.5, §4.1, §4.2) plus two tiny variants for CI, and the per-tensor type rules of each
// --weights scheme. `synth_plan` turns (preset, scheme) into the exact list of tensors a file holds:
// name, shape, ggml type, and the uniform distribution its seeded random values are drawn from.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model/ggml_type.hpp"

namespace worker::model::synth {

enum class synth_arch { qwen2, gpt_oss };

std::string_view arch_name(synth_arch arch);  // "qwen2" | "gpt-oss" (general.architecture)

// How the vocabulary of the HF tokenizer package is laid out in the GGUF token list.
struct synth_tokenizer_layout {
  std::string_view pre;          // tokenizer.ggml.pre
  std::uint32_t last_id;         // last id kept from the package (inclusive); later ids are left out
  std::uint32_t bos_id, eos_id, pad_id;
  std::string_view bos_text, eos_text, pad_text;  // what those ids must hold (catches a wrong tokenizer.json)
};

struct synth_preset {
  std::string_view name;          // --preset value
  synth_arch arch;
  std::string_view general_name;  // general.name (marked synthetic)
  std::uint32_t n_layer;
  std::uint32_t n_embd;           // d_model
  std::uint32_t n_head;
  std::uint32_t n_head_kv;
  std::uint32_t head_dim;         // qwen2: n_embd / n_head (no key_length key); gpt-oss: key/value_length
  std::uint32_t n_ff;             // qwen2 dense FFN width; gpt-oss feed_forward_length (informational)
  std::uint32_t n_expert;         // gpt-oss only
  std::uint32_t n_expert_used;    // gpt-oss only
  std::uint32_t n_ff_exp;         // gpt-oss expert FFN width
  std::uint32_t n_vocab;          // embedding rows (the token list is padded to this)
  std::uint32_t n_ctx_train;      // context_length
  std::uint32_t sliding_window;   // gpt-oss attention.sliding_window (even layers)
  float rms_eps;
  float rope_base;
  float yarn_factor;              // gpt-oss rope.scaling.factor
  std::uint32_t yarn_orig_ctx;    // gpt-oss rope.scaling.original_context_length
  synth_tokenizer_layout tokenizer;
  std::span<const std::string_view> weight_schemes;  // accepted --weights values, default first
};

// All presets, in --help order.
std::span<const synth_preset> synth_presets();
// The preset called `name`, or nullptr.
const synth_preset* find_synth_preset(std::string_view name);

// The uniform distribution a tensor's values are drawn from: center ± half_width.
inline constexpr float k_quiet_row_divisor = 16.0f;
struct synth_distribution {
  float center;
  float half_width;
};

struct synth_tensor {
  std::string name;
  ggml_type type;
  std::vector<std::int64_t> ne;  // ne[0] (row length) first
  synth_distribution dist;
  // Rows from this one on are drawn with half_width / k_quiet_row_divisor (-1: none). Used for the
  // output.weight rows of the vocabulary's padding ids: a trained model never predicts them, so their
  // logits stay near 0 while real tokens' top logits are ~25, and [PAD] tokens never win.
  std::int64_t quiet_row_begin = -1;

  std::int64_t n_elements() const;
  std::int64_t n_rows() const { return n_elements() / ne[0]; }
};

struct synth_plan {
  const synth_preset* preset;
  std::string_view weights;      // the --weights scheme
  std::uint32_t file_type;       // general.file_type (llama_ftype)
  std::vector<synth_tensor> tensors;
};

// The tensors of `preset` under `weights`, in file order. Throws std::invalid_argument for a scheme the
// preset does not accept (the message lists the accepted ones).
synth_plan make_synth_plan(const synth_preset& preset, std::string_view weights);

// llama.cpp's layer rule for the "more bits" tensors of Q4_K_M (attn_v, ffn_down): layer i of n gets
// Q6_K when i < n/8, i >= 7n/8, or (i - n/8) % 3 == 2 (src/llama-quant.cpp use_more_bits). For n = 28
// this is S = {0,1,2,5,8,11,14,17,20,23,24,25,26,27} of model-facts.md §4.1.
bool q4_k_m_uses_more_bits(std::uint32_t layer, std::uint32_t n_layer);

}  // namespace worker::model::synth
