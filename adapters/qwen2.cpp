// Adapter for `qwen2` (Qwen2.5): RMSNorm, Q/K/V projections with biases (none on the output), RoPE NEOX
// (θ = 1e6, no scaling), GQA, causal attention, dense SwiGLU FFN (model-facts.md §3.2, llama.cpp
// src/models/qwen2.cpp for the graph facts). The embedding/output and attention tensors are bound by the
// shared helpers of weights.hpp; this file adds the dense FFN.
#include <stdexcept>
#include <string>

#include "adapters/registry.hpp"
#include "adapters/weights.hpp"
#include "model/gguf.hpp"
#include "model/hparams.hpp"

namespace worker::adapters {

decoder_model load_qwen2(const model::gguf_file& file, const adapter_options& options) {
  if (options.mutation != adapter_mutation::none && options.mutation != adapter_mutation::rope_interleaved) {
    throw std::invalid_argument("mutation '" + std::string(to_string(options.mutation)) + "' does not apply to qwen2");
  }
  const model::qwen2_hparams hp = model::read_qwen2_hparams(file);
  const auto& h = hp.base;
  require_equal_head_dims(h, "qwen2");

  cpu::rope_params rope = rope_from_hparams(h.rope);
  if (options.mutation == adapter_mutation::rope_interleaved) rope.style = cpu::rope_style::interleaved;

  // Shapes in ggml order ([row length, rows]): E = n_embd, F = n_ff.
  const tensor_binder b(file);
  decoder_model m = bind_decoder_io(b, h, "qwen2");
  const std::int64_t E = h.n_embd, F = hp.n_ff;
  for (std::uint32_t il = 0; il < h.n_layer; ++il) {
    auto n = [il](const char* s) { return layer_tensor_name(il, s); };
    decoder_layer layer;
    // qwen2 GGUFs use full causal attention (use_sliding_window: false) and no output bias.
    layer.attention = bind_attention(b, h, il, output_bias::none, rope);
    dense_ffn_block f;
    f.norm = b.f32(n("ffn_norm.weight"), {E});
    f.gate = b.weight(n("ffn_gate.weight"), {E, F});
    f.up = b.weight(n("ffn_up.weight"), {E, F});
    f.down = b.weight(n("ffn_down.weight"), {F, E});
    f.n_ff = hp.n_ff;
    layer.ffn = std::move(f);
    m.layers.push_back(std::move(layer));
  }
  return m;
}

}  // namespace worker::adapters
