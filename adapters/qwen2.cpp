// Adapter for `qwen2` (Qwen2.5): RMSNorm, Q/K/V projections with biases (none on the output), RoPE NEOX
// (θ = 1e6, no scaling), GQA, causal attention, dense SwiGLU FFN (model-facts.md §3.2, llama.cpp
// src/models/qwen2.cpp for the graph facts).
#include <cmath>
#include <stdexcept>
#include <string>

#include "adapters/registry.hpp"
#include "adapters/weights.hpp"
#include "model/gguf.hpp"
#include "model/hparams.hpp"

namespace worker::adapters {

namespace {

// Shapes in ggml order ([row length, rows]); E = n_embd, Hq = n_head·head_dim, Hkv = n_head_kv·head_dim,
// F = n_ff, V = vocabulary.
struct qwen2_layer_weights {
  tensor_ref attn_norm;    // [E] F32
  tensor_ref wq, bq;       // [E, Hq], [Hq]
  tensor_ref wk, bk;       // [E, Hkv], [Hkv]
  tensor_ref wv, bv;       // [E, Hkv], [Hkv]
  tensor_ref wo;           // [Hq, E] (no bias)
  tensor_ref ffn_norm;     // [E] F32
  tensor_ref ffn_gate;     // [E, F]
  tensor_ref ffn_up;       // [E, F]
  tensor_ref ffn_down;     // [F, E]
};

struct qwen2_weights {
  tensor_ref token_embd;   // [E, V]
  std::vector<qwen2_layer_weights> layers;
  tensor_ref output_norm;  // [E] F32
  tensor_ref output;       // [E, V]; token_embd when absent (tied)
};

qwen2_weights bind_qwen2(const tensor_binder& b, const model::qwen2_hparams& hp) {
  const auto& h = hp.base;
  const std::int64_t E = h.n_embd, V = h.vocab_size, F = hp.n_ff;
  const std::int64_t Hq = std::int64_t{h.n_head} * h.head_dim_k;
  const std::int64_t Hkv = std::int64_t{h.n_head_kv} * h.head_dim_k;
  qwen2_weights w;
  w.token_embd = b.weight("token_embd.weight", {E, V});
  w.output_norm = b.f32("output_norm.weight", {E});
  w.output = b.weight("output.weight", {E, V}, tensor_need::optional);
  if (!w.output.present()) w.output = w.token_embd;
  for (std::uint32_t il = 0; il < h.n_layer; ++il) {
    auto n = [il](const char* s) { return layer_tensor_name(il, s); };
    qwen2_layer_weights l;
    l.attn_norm = b.f32(n("attn_norm.weight"), {E});
    l.wq = b.weight(n("attn_q.weight"), {E, Hq});
    l.bq = b.f32(n("attn_q.bias"), {Hq});
    l.wk = b.weight(n("attn_k.weight"), {E, Hkv});
    l.bk = b.f32(n("attn_k.bias"), {Hkv});
    l.wv = b.weight(n("attn_v.weight"), {E, Hkv});
    l.bv = b.f32(n("attn_v.bias"), {Hkv});
    l.wo = b.weight(n("attn_output.weight"), {Hq, E});
    l.ffn_norm = b.f32(n("ffn_norm.weight"), {E});
    l.ffn_gate = b.weight(n("ffn_gate.weight"), {E, F});
    l.ffn_up = b.weight(n("ffn_up.weight"), {E, F});
    l.ffn_down = b.weight(n("ffn_down.weight"), {F, E});
    w.layers.push_back(std::move(l));
  }
  return w;
}

}  // namespace

decoder_model load_qwen2(const model::gguf_file& file, const adapter_options& options) {
  if (options.mutation != adapter_mutation::none && options.mutation != adapter_mutation::rope_interleaved) {
    throw std::invalid_argument("mutation '" + std::string(to_string(options.mutation)) + "' does not apply to qwen2");
  }
  const model::qwen2_hparams hp = model::read_qwen2_hparams(file);
  const auto& h = hp.base;
  if (h.head_dim_k != h.head_dim_v) {
    throw model::gguf_error(model::gguf_error_code::bad_shape, "qwen2.attention.value_length", 0,
                            "key and value head dimensions differ");
  }
  const qwen2_weights w = bind_qwen2(tensor_binder(file), hp);

  decoder_model m;
  m.architecture = "qwen2";
  m.n_vocab = h.vocab_size;
  m.d_model = h.n_embd;
  m.n_ctx_train = h.n_ctx_train;
  m.norm_eps = h.rms_eps;
  m.token_embd = w.token_embd;
  m.output_norm = w.output_norm;
  m.output = w.output;

  cpu::rope_params rope = rope_from_hparams(h.rope);
  if (options.mutation == adapter_mutation::rope_interleaved) rope.style = cpu::rope_style::interleaved;

  for (const auto& l : w.layers) {
    decoder_layer layer;
    attention_block& a = layer.attention;
    a.norm = l.attn_norm;
    a.wq = l.wq, a.bq = l.bq;
    a.wk = l.wk, a.bk = l.bk;
    a.wv = l.wv, a.bv = l.bv;
    a.wo = l.wo;
    a.attn.n_head = h.n_head;
    a.attn.n_head_kv = h.n_head_kv;
    a.attn.head_dim = h.head_dim_k;
    a.attn.scale = 1.0f / std::sqrt(static_cast<float>(h.head_dim_k));
    a.attn.window = 0;  // qwen2 GGUFs use full causal attention (use_sliding_window: false)
    a.rope = rope;
    layer.ffn = dense_ffn_block{l.ffn_norm, l.ffn_gate, l.ffn_up, l.ffn_down, hp.n_ff};
    m.layers.push_back(std::move(layer));
  }
  return m;
}

}  // namespace worker::adapters
