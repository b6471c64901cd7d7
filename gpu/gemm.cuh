// Prefill GEMM on tensor cores: Y[t][m] (=, or +=) Σ_k W[m][k]·X[t][k] for a chunk of prompt tokens,
// with X in fp16 and Y in fp32 (fp32 accumulation). F16 weights are used in place; every other type
// is dequantized on the device into an fp16 tile of whole rows (dequantize_rows_f16) that cuBLAS
// multiplies, tile by tile, so the quantized weights stay the only copy in VRAM.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "gpu/device_matrix.hpp"

namespace worker::gpu {

class device_context;

struct gemm_args {
  device_matrix w;                 // [M rows][K cols]
  const __half* x = nullptr;       // [n][ldx]
  std::uint32_t ldx = 0;
  std::uint32_t n = 0;             // tokens
  float* y = nullptr;              // [n][ldy]
  std::uint32_t ldy = 0;
  bool accumulate = false;         // y += W·x (residual add)
  __half* tile = nullptr;          // fp16 scratch for dequantized rows (unused for F16 weights)
  std::size_t tile_elems = 0;      // capacity of `tile` in halves (≥ K)
};

// Runs on ctx's compute stream with ctx's cuBLAS handle.
void gemm_f16(const device_context& ctx, const gemm_args& a);

}  // namespace worker::gpu
