// CPU reference for every supported ggml block format: dequantize, quantize, and dot products of a
// stored row with an fp32 vector. Block layouts: ../shared/docs/model-facts.md §5.
// These are the numerical ground truth for the CPU engine and for the CUDA kernels' tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "model/ggml_type.hpp"

namespace worker::model {

// IEEE binary16 and bfloat16 conversions (round to nearest even).
float fp16_to_fp32(std::uint16_t h);
std::uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(std::uint16_t b);
std::uint16_t fp32_to_bf16(float f);

// Dequantizes `n` elements (a multiple of the type's block size) from `src` into `dst`.
// Precondition: `type` is supported (traits(type).supported).
void dequantize_row(ggml_type type, const void* src, float* dst, std::size_t n);

// Quantizes `n` floats (a multiple of the block size) into blocks of `type` at `dst`
// (row_bytes(type, n) bytes). Used by the synthetic model generator and round-trip tests.
void quantize_row(ggml_type type, const float* src, void* dst, std::size_t n);

// Σ_i dequant(row)[i]·x[i] over `n` elements. The summation order is fixed (block by block, fp32), so
// the result is the same run to run and does not depend on threads or batch composition.
float dot_row(ggml_type type, const void* row, const float* x, std::size_t n);

}  // namespace worker::model
