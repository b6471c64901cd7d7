// How a stored weight tensor sits in VRAM. Weights keep their quantized bits (no fp16/fp32 copies of
// quantized data); only the block layout changes where ggml's packed blocks are not 16-byte aligned:
//
//   type        ggml block (bytes)            device layout (per tensor, parts 256-byte aligned)
//   F32/F16/BF16  plain rows                  as stored
//   Q4_K (144)  d,dmin,scales[12],qs[128]     as stored (144 = 9·16: every block 16-byte aligned)
//   Q5_K (176)  d,dmin,scales,qh[32],qs[128]  as stored (176 = 11·16)
//   Q8_0 (34)   d, qs[32]                     qs: nb×32 | d: nb×fp16
//   Q4_0 (18)   d, qs[16]                     qs: nb×16 | d: nb×fp16
//   Q5_0 (22)   d, qh(u32), qs[16]            qs: nb×16 | qh: nb×u32 | d: nb×fp16
//   Q6_K (210)  ql[128],qh[64],sc[16],d       qlqh: nb×192 (ql then qh) | sc: nb×16 | d: nb×fp16
//
// nb = rows·cols/block_elems blocks, numbered row-major (row r, block b → r·(cols/block)+b). The total
// bytes equal the stored bytes plus at most 2×255 bytes of alignment padding.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/ggml_type.hpp"

namespace worker::gpu {

// A 2-D weight [rows = M outputs, cols = K inputs] in VRAM.
struct device_matrix {
  model::ggml_type type = model::ggml_type::f32;
  std::uint32_t rows = 0;
  std::uint32_t cols = 0;
  const std::byte* qs = nullptr;       // blocks (as-stored types) or the quant bytes (split types)
  const std::byte* aux = nullptr;      // Q5_0 qh words, Q6_K scales; null otherwise
  const std::uint16_t* d = nullptr;    // fp16 block scales of the split types; null otherwise
};

struct device_layout {
  std::size_t qs_bytes = 0, aux_bytes = 0, d_bytes = 0;
  std::size_t aux_offset = 0, d_offset = 0;  // from the tensor's base
  std::size_t total_bytes = 0;               // including internal alignment
  bool split = false;                        // true when the bytes are re-laid out (table above)
};

// Throws gpu_error(invalid_argument) for a type the CUDA kernels do not implement or a row length
// that is not a whole number of blocks.
device_layout layout_of(model::ggml_type type, std::uint64_t rows, std::uint64_t cols);

// The matrix view of a tensor stored at `base` with layout_of(type, rows, cols).
device_matrix make_device_matrix(model::ggml_type type, std::uint32_t rows, std::uint32_t cols, const void* base);

// True for the types the CUDA kernels implement: f32 f16 bf16 q8_0 q4_0 q5_0 q4_k q5_k q6_k.
bool cuda_supports(model::ggml_type type);

}  // namespace worker::gpu
