// The backend-neutral description of a decoder-only transformer, as an architecture adapter builds it
// from a GGUF file: hyperparameters turned into block parameters, and every weight bound to its stored
// bytes (type and ggml shape kept, nothing dequantized). Backends (the CPU reference engine, the CUDA
// engine) execute this description; they never ask which architecture it came from.
//
// Skeleton shared by the architectures here (pre-norm residual decoder):
//   h = embd[tok]
//   per layer: h += attention_block(rmsnorm(h)); h += ffn_block(rmsnorm(h))
//   logits = output · rmsnorm(h, output_norm)
// An architecture outside this skeleton adds a block kind here (see docs/adding-an-architecture.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "cpu/attention.hpp"
#include "cpu/ffn.hpp"
#include "cpu/rope.hpp"
#include "model/ggml_type.hpp"

namespace worker::adapters {

// A weight or vector as stored in the file. `data` is null for an optional tensor that is absent.
struct tensor_ref {
  std::string name;
  model::ggml_type type = model::ggml_type::f32;
  std::array<std::int64_t, 4> ne{1, 1, 1, 1};  // ggml order: ne[0] is the contiguous row length
  const std::byte* data = nullptr;             // into the mapped file
  std::uint64_t nbytes = 0;

  bool present() const { return data != nullptr; }
  // Float view of an F32 tensor (norm weights, biases, sinks are F32 in every supported file).
  const float* f32() const { return reinterpret_cast<const float*>(data); }
};

struct attention_block {
  tensor_ref norm;        // [d_model] F32, pre-attention RMSNorm
  tensor_ref wq, bq;      // [d_model, n_head·head_dim], [n_head·head_dim] (bias optional)
  tensor_ref wk, bk;      // [d_model, n_head_kv·head_dim], [n_head_kv·head_dim]
  tensor_ref wv, bv;      // [d_model, n_head_kv·head_dim], [n_head_kv·head_dim]
  tensor_ref wo, bo;      // [n_head·head_dim, d_model], [d_model] (bias optional)
  tensor_ref sinks;       // [n_head] F32 sink logits (optional)
  cpu::attention_params attn;  // shape, scale, window; attn.sinks is left null (backends bind `sinks`)
  cpu::rope_params rope;       // applied to Q and K after the biases
};

enum class ffn_activation {
  swiglu,      // silu(gate)·up
  swiglu_oai,  // gpt-oss clamped variant (cpu::swiglu_oai)
};

struct dense_ffn_block {
  tensor_ref norm;           // [d_model] F32, pre-FFN RMSNorm
  tensor_ref gate, up;       // [d_model, n_ff]
  tensor_ref down;           // [n_ff, d_model]
  std::uint32_t n_ff = 0;
};

struct moe_ffn_block {
  tensor_ref norm;                  // [d_model] F32, pre-MoE RMSNorm
  tensor_ref router, router_bias;   // [d_model, n_expert], [n_expert] (bias optional)
  tensor_ref gate_exps, gate_bias;  // [d_model, n_ff, n_expert], [n_ff, n_expert] (bias optional)
  tensor_ref up_exps, up_bias;      // [d_model, n_ff, n_expert], [n_ff, n_expert]
  tensor_ref down_exps, down_bias;  // [n_ff, d_model, n_expert], [d_model, n_expert]
  std::uint32_t n_ff = 0;           // expert FFN width
  cpu::moe_route_params route;      // n_expert, k, gating
  ffn_activation activation = ffn_activation::swiglu_oai;
  cpu::swiglu_oai_params oai;       // α, limit (used by swiglu_oai)
};

using ffn_block = std::variant<dense_ffn_block, moe_ffn_block>;

struct decoder_layer {
  attention_block attention;
  ffn_block ffn;
};

struct decoder_model {
  std::string architecture;    // general.architecture
  std::uint32_t n_vocab = 0;   // rows of `output`
  std::uint32_t d_model = 0;
  std::uint32_t n_ctx_train = 0;
  float norm_eps = 1e-6f;      // every RMSNorm of the model
  tensor_ref token_embd;       // [d_model, n_vocab]
  tensor_ref output_norm;      // [d_model] F32
  tensor_ref output;           // [d_model, n_vocab] (token_embd when the file ties them)
  std::vector<decoder_layer> layers;

  // KV row width of layer l (n_head_kv·head_dim floats for K, the same for V).
  std::uint32_t kv_width(std::size_t layer) const {
    const auto& a = layers[layer].attention.attn;
    return a.n_head_kv * a.head_dim;
  }
};

}  // namespace worker::adapters
