// Adapter for `gpt-oss`: attention with per-head sinks, sliding window on even layers, RoPE NEOX with
// YaRN as ggml computes it, Q width ≠ d_model, biases on every projection, and an MoE FFN (top-k on raw
// router logits, softmax over the selected, clamped SwiGLU with α = 1.702 and +1 on the linear branch).
// Formulas: model-facts.md §3.3-3.7 (llama.cpp src/models/openai-moe.cpp, build_moe_ffn for the facts).
#include <cmath>
#include <stdexcept>
#include <string>

#include "adapters/registry.hpp"
#include "adapters/weights.hpp"
#include "model/gguf.hpp"
#include "model/hparams.hpp"

namespace worker::adapters {

namespace {

// Shapes in ggml order ([row length, rows, experts]); E = n_embd, Hq = n_head·head_dim (4096 ≠ E in the
// 20B model), Hkv = n_head_kv·head_dim, F = n_ff_exp, X = n_expert, V = vocabulary.
struct gpt_oss_layer_weights {
  tensor_ref attn_norm;              // [E] F32
  tensor_ref wq, bq;                 // [E, Hq], [Hq]
  tensor_ref wk, bk;                 // [E, Hkv], [Hkv]
  tensor_ref wv, bv;                 // [E, Hkv], [Hkv]
  tensor_ref wo, bo;                 // [Hq, E], [E]
  tensor_ref sinks;                  // [n_head] F32
  tensor_ref post_attention_norm;    // [E] F32 (the pre-MoE norm)
  tensor_ref router, router_bias;    // [E, X] (F32 in real files), [X]
  tensor_ref gate_exps, gate_bias;   // [E, F, X], [F, X]
  tensor_ref up_exps, up_bias;       // [E, F, X], [F, X]
  tensor_ref down_exps, down_bias;   // [F, E, X], [E, X] (down maps F -> E: same ne as gate when E == F)
};

struct gpt_oss_weights {
  tensor_ref token_embd;   // [E, V]
  std::vector<gpt_oss_layer_weights> layers;
  tensor_ref output_norm;  // [E] F32
  tensor_ref output;       // [E, V]; token_embd when absent (tied)
};

gpt_oss_weights bind_gpt_oss(const tensor_binder& b, const model::gpt_oss_hparams& hp) {
  const auto& h = hp.base;
  const std::int64_t E = h.n_embd, V = h.vocab_size, F = hp.n_ff_exp, X = hp.n_expert;
  const std::int64_t Hq = std::int64_t{h.n_head} * h.head_dim_k;
  const std::int64_t Hkv = std::int64_t{h.n_head_kv} * h.head_dim_k;
  gpt_oss_weights w;
  w.token_embd = b.weight("token_embd.weight", {E, V});
  w.output_norm = b.f32("output_norm.weight", {E});
  w.output = b.weight("output.weight", {E, V}, tensor_need::optional);
  if (!w.output.present()) w.output = w.token_embd;
  for (std::uint32_t il = 0; il < h.n_layer; ++il) {
    auto n = [il](const char* s) { return layer_tensor_name(il, s); };
    gpt_oss_layer_weights l;
    l.attn_norm = b.f32(n("attn_norm.weight"), {E});
    l.wq = b.weight(n("attn_q.weight"), {E, Hq});
    l.bq = b.f32(n("attn_q.bias"), {Hq});
    l.wk = b.weight(n("attn_k.weight"), {E, Hkv});
    l.bk = b.f32(n("attn_k.bias"), {Hkv});
    l.wv = b.weight(n("attn_v.weight"), {E, Hkv});
    l.bv = b.f32(n("attn_v.bias"), {Hkv});
    l.wo = b.weight(n("attn_output.weight"), {Hq, E});
    l.bo = b.f32(n("attn_output.bias"), {E});
    l.sinks = b.f32(n("attn_sinks.weight"), {h.n_head});
    l.post_attention_norm = b.f32(n("post_attention_norm.weight"), {E});
    l.router = b.weight(n("ffn_gate_inp.weight"), {E, X});
    l.router_bias = b.f32(n("ffn_gate_inp.bias"), {X});
    l.gate_exps = b.weight(n("ffn_gate_exps.weight"), {E, F, X});
    l.gate_bias = b.f32(n("ffn_gate_exps.bias"), {F, X});
    l.up_exps = b.weight(n("ffn_up_exps.weight"), {E, F, X});
    l.up_bias = b.f32(n("ffn_up_exps.bias"), {F, X});
    l.down_exps = b.weight(n("ffn_down_exps.weight"), {F, E, X});
    l.down_bias = b.f32(n("ffn_down_exps.bias"), {E, X});
    w.layers.push_back(std::move(l));
  }
  return w;
}

}  // namespace

decoder_model load_gpt_oss(const model::gguf_file& file, const adapter_options& options) {
  const model::gpt_oss_hparams hp = model::read_gpt_oss_hparams(file);
  const auto& h = hp.base;
  if (h.head_dim_k != h.head_dim_v) {
    throw model::gguf_error(model::gguf_error_code::bad_shape, "gpt-oss.attention.value_length", 0,
                            "key and value head dimensions differ");
  }
  const gpt_oss_weights w = bind_gpt_oss(tensor_binder(file), hp);
  const adapter_mutation mut = options.mutation;

  decoder_model m;
  m.architecture = "gpt-oss";
  m.n_vocab = h.vocab_size;
  m.d_model = h.n_embd;
  m.n_ctx_train = h.n_ctx_train;
  m.norm_eps = h.rms_eps;
  m.token_embd = w.token_embd;
  m.output_norm = w.output_norm;
  m.output = w.output;

  cpu::rope_params rope = rope_from_hparams(h.rope);
  if (mut == adapter_mutation::rope_interleaved) rope.style = cpu::rope_style::interleaved;
  if (mut == adapter_mutation::no_yarn) {
    rope.ext_factor = 0.0f;
    rope.freq_scale = 1.0f;
  }

  for (std::uint32_t il = 0; il < h.n_layer; ++il) {
    const auto& l = w.layers[il];
    decoder_layer layer;
    attention_block& a = layer.attention;
    a.norm = l.attn_norm;
    a.wq = l.wq, a.bq = l.bq;
    a.wk = l.wk, a.bk = l.bk;
    a.wv = l.wv, a.bv = l.bv;
    a.wo = l.wo, a.bo = l.bo;
    if (mut != adapter_mutation::no_sinks) a.sinks = l.sinks;
    a.attn.n_head = h.n_head;
    a.attn.n_head_kv = h.n_head_kv;
    a.attn.head_dim = h.head_dim_k;
    a.attn.scale = 1.0f / std::sqrt(static_cast<float>(h.head_dim_k));
    const bool swa = hp.n_swa > 0 && hp.layer_is_swa(il) && mut != adapter_mutation::no_sliding_window;
    a.attn.window = swa ? hp.n_swa : 0;
    a.rope = rope;

    moe_ffn_block f;
    f.norm = l.post_attention_norm;
    f.router = l.router;
    if (mut != adapter_mutation::no_router_bias) f.router_bias = l.router_bias;
    f.gate_exps = l.gate_exps, f.gate_bias = l.gate_bias;
    f.up_exps = l.up_exps, f.up_bias = l.up_bias;
    f.down_exps = l.down_exps, f.down_bias = l.down_bias;
    f.n_ff = hp.n_ff_exp;
    f.route.n_expert = hp.n_expert;
    f.route.n_used = hp.n_expert_used;
    f.route.gating = mut == adapter_mutation::softmax_before_top_k ? cpu::moe_gating::top_k_of_softmax
                                                                   : cpu::moe_gating::softmax_of_top_k;
    f.activation = ffn_activation::swiglu_oai;
    f.oai = cpu::swiglu_oai_params{1.702f, 7.0f};  // hardcoded in llama.cpp's build_moe_ffn for gpt-oss
    layer.ffn = std::move(f);
    m.layers.push_back(std::move(layer));
  }
  return m;
}

}  // namespace worker::adapters
