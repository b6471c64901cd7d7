// Weight re-layout at load time and dequantization on the device.
//
// repack_blocks: ggml's packed blocks (as read from the file, already in VRAM) → the split layouts of
//   device_matrix.hpp, for a range of blocks. One thread per block; bytes are copied, not changed.
// dequantize_rows_f16: rows [row0, row0+n) of a weight → fp16 [n][cols] (the "dequantized tile" a
//   prefill GEMM multiplies on tensor cores).
// gather_rows_f32: embedding lookup, out[t][:] = dequant(W[ids[t]]), ids on the device; an id out of
//   range writes NaN so a bad token can never read outside the table.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpu/device_matrix.hpp"

namespace worker::gpu {

// Launcher: `raw` holds n_blocks ggml blocks of `type`, which are blocks [first_block, first_block +
// n_blocks) of a tensor whose device copy starts at `dst_base` with layout `layout`. No-op for types
// stored as-is (the caller copies those directly).
void repack_blocks(model::ggml_type type, const void* raw, std::size_t first_block, std::size_t n_blocks,
                   void* dst_base, const device_layout& layout, cudaStream_t stream);

// Typed entry: checks row range. out has n_rows·w.cols halves.
void dequantize_rows_f16(const device_matrix& w, std::uint32_t row0, std::uint32_t n_rows, __half* out,
                         cudaStream_t stream);

// Typed entry: out[t·ldo + k] for t < n, k < w.cols. With `from` (device, [n]): row t's id is
// from_ids[from[t]] where from[t] ≥ 0 — a token an earlier kernel left on the device (the previous decode
// step's sampled id) — and ids[t] where it is negative.
void gather_rows_f32(const device_matrix& w, const std::int32_t* ids, std::uint32_t n, float* out, std::uint32_t ldo,
                     cudaStream_t stream, const std::int32_t* from = nullptr, const std::int32_t* from_ids = nullptr);

}  // namespace worker::gpu
