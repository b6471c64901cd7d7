// Adapter for `gpt-oss`: attention with per-head sinks, sliding window on even layers, RoPE NEOX with
// YaRN as ggml computes it, Q width ≠ d_model, biases on every projection, and an MoE FFN (top-k on raw
// router logits, softmax over the selected, clamped SwiGLU with α = 1.702 and +1 on the linear branch).
// Formulas: model-facts.md §3.3-3.7 (llama.cpp src/models/openai-moe.cpp, build_moe_ffn for the facts).
// The embedding/output and attention tensors are bound by the shared helpers of weights.hpp; this file
// adds sinks, the sliding window and the MoE FFN.
#include <string>

#include "adapters/registry.hpp"
#include "adapters/weights.hpp"
#include "model/gguf.hpp"
#include "model/hparams.hpp"

namespace worker::adapters {

decoder_model load_gpt_oss(const model::gguf_file& file, const adapter_options& options) {
  const model::gpt_oss_hparams hp = model::read_gpt_oss_hparams(file);
  const auto& h = hp.base;
  require_equal_head_dims(h, "gpt-oss");
  const adapter_mutation mut = options.mutation;

  cpu::rope_params rope = rope_from_hparams(h.rope);
  if (mut == adapter_mutation::rope_interleaved) rope.style = cpu::rope_style::interleaved;
  if (mut == adapter_mutation::no_yarn) {
    rope.ext_factor = 0.0f;
    rope.freq_scale = 1.0f;
  }

  // Shapes in ggml order ([row length, rows, experts]): E = n_embd, F = n_ff_exp, X = n_expert. The
  // attention's Q width (n_head·head_dim, 4096 in the 20B model) differs from E (2880).
  const tensor_binder b(file);
  decoder_model m = bind_decoder_io(b, h, "gpt-oss");
  const std::int64_t E = h.n_embd, F = hp.n_ff_exp, X = hp.n_expert;
  for (std::uint32_t il = 0; il < h.n_layer; ++il) {
    auto n = [il](const char* s) { return layer_tensor_name(il, s); };
    decoder_layer layer;
    attention_block& a = layer.attention;
    a = bind_attention(b, h, il, output_bias::required, rope);
    const tensor_ref sinks = b.f32(n("attn_sinks.weight"), {h.n_head});
    if (mut != adapter_mutation::no_sinks) a.sinks = sinks;
    const bool swa = hp.n_swa > 0 && hp.layer_is_swa(il) && mut != adapter_mutation::no_sliding_window;
    a.attn.window = swa ? hp.n_swa : 0;

    moe_ffn_block f;
    f.norm = b.f32(n("post_attention_norm.weight"), {E});  // the pre-MoE norm
    f.router = b.weight(n("ffn_gate_inp.weight"), {E, X});  // F32 in real files
    const tensor_ref router_bias = b.f32(n("ffn_gate_inp.bias"), {X});
    if (mut != adapter_mutation::no_router_bias) f.router_bias = router_bias;
    f.gate_exps = b.weight(n("ffn_gate_exps.weight"), {E, F, X});
    f.gate_bias = b.f32(n("ffn_gate_exps.bias"), {F, X});
    f.up_exps = b.weight(n("ffn_up_exps.weight"), {E, F, X});
    f.up_bias = b.f32(n("ffn_up_exps.bias"), {F, X});
    // down maps F -> E: the same ne as gate when E == F (the real model), distinct in the tiny preset.
    f.down_exps = b.weight(n("ffn_down_exps.weight"), {F, E, X});
    f.down_bias = b.f32(n("ffn_down_exps.bias"), {E, X});
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
