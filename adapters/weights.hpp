// Binding GGUF tensors to an adapter's weight structs: look a tensor up by name, check its ggml shape
// (and, for vectors the engines read as floats, that it is F32), and keep a tensor_ref to its bytes.
// Every failure is a model::gguf_error naming the tensor (missing_tensor, bad_shape).
// Also the binding every adapter shares (header fields, embedding/output, the attention block), so an
// adapter file only adds what is specific to its architecture.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "adapters/decoder.hpp"
#include "cpu/rope.hpp"
#include "model/hparams.hpp"

namespace worker::model {
class gguf_file;
}

namespace worker::adapters {

enum class tensor_need { required, optional };

class tensor_binder {
 public:
  explicit tensor_binder(const model::gguf_file& file) : file_(file) {}

  // A weight matrix/tensor of any supported type with exactly the shape `ne` (ggml order, trailing
  // 1s may be omitted). Optional tensors that are absent come back with data == nullptr.
  tensor_ref weight(const std::string& name, std::initializer_list<std::int64_t> ne,
                    tensor_need need = tensor_need::required) const;
  // The same, but the tensor must be F32 (norms, biases, sinks).
  tensor_ref f32(const std::string& name, std::initializer_list<std::int64_t> ne,
                 tensor_need need = tensor_need::required) const;

  const model::gguf_file& file() const { return file_; }

 private:
  const model::gguf_file& file_;
};

// "blk.<layer>.<suffix>"
std::string layer_tensor_name(std::uint32_t layer, std::string_view suffix);

// --- Binding shared by the architecture adapters ----------------------------------------------------
// Shapes in ggml order ([row length, rows]); E = n_embd, V = vocabulary, Hq = n_head·head_dim,
// Hkv = n_head_kv·head_dim.

// Throws gguf_error(bad_shape) naming `<arch>.attention.value_length` when K and V head sizes differ
// (every block here assumes one head_dim).
void require_equal_head_dims(const model::transformer_hparams& h, std::string_view arch);

// The model's header fields (vocabulary, d_model, context, norm eps, architecture name) and its
// embedding/output tensors: token_embd [E, V], output_norm [E] F32, output [E, V] (token_embd when the
// file ties them). Layers are left empty.
decoder_model bind_decoder_io(const tensor_binder& b, const model::transformer_hparams& h, std::string architecture);

// Whether a layer's attention output projection carries a bias (gpt-oss: yes, required; qwen2: none).
enum class output_bias { none, required };

// Layer il's attention block: attn_norm [E] F32, attn_q/k/v weights [E, Hq|Hkv] with F32 biases
// [Hq|Hkv], attn_output [Hq, E] (+ bias [E] when asked), head counts, head_dim, scale 1/sqrt(head_dim),
// full causal attention (window 0), no sinks, and `rope`. Tensors are looked up in this order.
attention_block bind_attention(const tensor_binder& b, const model::transformer_hparams& h, std::uint32_t il,
                               output_bias bo, const cpu::rope_params& rope);

// The CPU rope parameters (NEOX) for typed hparams: YaRN sets ext_factor = 1 (llama.cpp's default for
// the yarn scaling type), attn_factor stays 1 because llama.cpp's correction cancels (model-facts §3.5).
cpu::rope_params rope_from_hparams(const model::rope_params& hp);

}  // namespace worker::adapters
