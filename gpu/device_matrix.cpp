// Device layouts of the weight types (see device_matrix.hpp).
#include "gpu/device_matrix.hpp"

#include <string>

#include "gpu/gpu_error.hpp"
#include "gpu/vram_arena.hpp"

namespace worker::gpu {

using model::ggml_type;

bool cuda_supports(ggml_type type) {
  switch (type) {
    case ggml_type::f32:
    case ggml_type::f16:
    case ggml_type::bf16:
    case ggml_type::q8_0:
    case ggml_type::q4_0:
    case ggml_type::q5_0:
    case ggml_type::q4_k:
    case ggml_type::q5_k:
    case ggml_type::q6_k: return true;
    default: return false;
  }
}

device_layout layout_of(ggml_type type, std::uint64_t rows, std::uint64_t cols) {
  if (!cuda_supports(type)) {
    throw gpu_error(gpu_error_code::invalid_argument,
                    "the CUDA engine has no kernels for " + std::string(model::type_name(type)) + " weights");
  }
  const auto& t = model::traits(type);
  if (cols % t.block_elems != 0) {
    throw gpu_error(gpu_error_code::invalid_argument, "row of " + std::to_string(cols) + " elements is not a whole number of " +
                                                          std::string(t.name) + " blocks");
  }
  const std::uint64_t nb = rows * cols / t.block_elems;
  device_layout l;
  switch (type) {
    case ggml_type::q8_0: l.split = true; l.qs_bytes = nb * 32; l.d_bytes = nb * 2; break;
    case ggml_type::q4_0: l.split = true; l.qs_bytes = nb * 16; l.d_bytes = nb * 2; break;
    case ggml_type::q5_0: l.split = true; l.qs_bytes = nb * 16; l.aux_bytes = nb * 4; l.d_bytes = nb * 2; break;
    case ggml_type::q6_k: l.split = true; l.qs_bytes = nb * 192; l.aux_bytes = nb * 16; l.d_bytes = nb * 2; break;
    default: l.qs_bytes = nb * t.block_bytes; break;
  }
  l.aux_offset = align_up(l.qs_bytes, 256);
  l.d_offset = align_up(l.aux_offset + l.aux_bytes, 256);
  l.total_bytes = l.split ? l.d_offset + l.d_bytes : l.qs_bytes;
  return l;
}

device_matrix make_device_matrix(ggml_type type, std::uint32_t rows, std::uint32_t cols, const void* base) {
  const device_layout l = layout_of(type, rows, cols);
  device_matrix m;
  m.type = type;
  m.rows = rows;
  m.cols = cols;
  const auto* b = static_cast<const std::byte*>(base);
  m.qs = b;
  if (l.aux_bytes) m.aux = b + l.aux_offset;
  if (l.split) m.d = reinterpret_cast<const std::uint16_t*>(b + l.d_offset);
  return m;
}

}  // namespace worker::gpu
