// Binding GGUF tensors to an adapter's weight structs: look a tensor up by name, check its ggml shape
// (and, for vectors the engines read as floats, that it is F32), and keep a tensor_ref to its bytes.
// Every failure is a model::gguf_error naming the tensor (missing_tensor, bad_shape).
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

// The CPU rope parameters (NEOX) for typed hparams: YaRN sets ext_factor = 1 (llama.cpp's default for
// the yarn scaling type), attn_factor stays 1 because llama.cpp's correction cancels (model-facts §3.5).
cpu::rope_params rope_from_hparams(const model::rope_params& hp);

}  // namespace worker::adapters
