// Device-side readers of the weight layouts in device_matrix.hpp: fp16/bf16 bit conversions, K-quant
// scale unpacking, and dequant8() which turns 8 consecutive elements of one row into fp32. Used by the
// embedding gather, the fp16 dequantization for prefill GEMMs and the tests; the decode matvec has its
// own int8 paths (matvec.cu). Formulas: ../shared/docs/model-facts.md §5.
#pragma once

#include <cuda_fp16.h>
#include <cuda_bf16.h>

#include <cstdint>

#include "gpu/device_matrix.hpp"

namespace worker::gpu::blocks {

__device__ __forceinline__ float half_bits_to_float(std::uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf16_bits_to_float(std::uint16_t b) { return __uint_as_float(static_cast<std::uint32_t>(b) << 16); }

__device__ __forceinline__ uint4 ld16(const void* p) { return __ldg(reinterpret_cast<const uint4*>(p)); }

// 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block; s = the 12 scale bytes.
__device__ __forceinline__ void k4_scale_min(int j, const std::uint8_t* s, int& sc, int& m) {
  if (j < 4) {
    sc = s[j] & 63;
    m = s[j + 4] & 63;
  } else {
    sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

// Elements [col, col+8) of `row` (col a multiple of 8) as fp32.
__device__ inline void dequant8(const device_matrix& w, std::uint32_t row, std::uint32_t col, float out[8]) {
  using model::ggml_type;
  const std::size_t e = static_cast<std::size_t>(row) * w.cols + col;  // element index in the tensor
  switch (w.type) {
    case ggml_type::f32: {
      const float* p = reinterpret_cast<const float*>(w.qs) + e;
      for (int i = 0; i < 8; ++i) out[i] = p[i];
      return;
    }
    case ggml_type::f16: {
      const std::uint16_t* p = reinterpret_cast<const std::uint16_t*>(w.qs) + e;
      for (int i = 0; i < 8; ++i) out[i] = half_bits_to_float(p[i]);
      return;
    }
    case ggml_type::bf16: {
      const std::uint16_t* p = reinterpret_cast<const std::uint16_t*>(w.qs) + e;
      for (int i = 0; i < 8; ++i) out[i] = bf16_bits_to_float(p[i]);
      return;
    }
    case ggml_type::q8_0: {
      const std::size_t b = e / 32;
      const std::int8_t* q = reinterpret_cast<const std::int8_t*>(w.qs) + b * 32 + e % 32;
      const float d = half_bits_to_float(w.d[b]);
      for (int i = 0; i < 8; ++i) out[i] = d * static_cast<float>(q[i]);
      return;
    }
    case ggml_type::q4_0: {
      const std::size_t b = e / 32;
      const int j = static_cast<int>(e % 32);
      const std::uint8_t* q = reinterpret_cast<const std::uint8_t*>(w.qs) + b * 16 + (j & 15);
      const float d = half_bits_to_float(w.d[b]);
      const int shift = j < 16 ? 0 : 4;
      for (int i = 0; i < 8; ++i) out[i] = d * static_cast<float>(((q[i] >> shift) & 0xF) - 8);
      return;
    }
    case ggml_type::q5_0: {
      const std::size_t b = e / 32;
      const int j = static_cast<int>(e % 32);
      const std::uint8_t* q = reinterpret_cast<const std::uint8_t*>(w.qs) + b * 16 + (j & 15);
      const std::uint32_t qh = reinterpret_cast<const std::uint32_t*>(w.aux)[b];
      const float d = half_bits_to_float(w.d[b]);
      const int shift = j < 16 ? 0 : 4;
      for (int i = 0; i < 8; ++i) {
        const int v = ((q[i] >> shift) & 0xF) | (((qh >> (j + i)) & 1) << 4);
        out[i] = d * static_cast<float>(v - 16);
      }
      return;
    }
    case ggml_type::q4_k:
    case ggml_type::q5_k: {
      const bool five = w.type == ggml_type::q5_k;
      const std::size_t b = e / 256;
      const int k = static_cast<int>(e % 256);
      const std::uint8_t* blk = reinterpret_cast<const std::uint8_t*>(w.qs) + b * (five ? 176 : 144);
      const float d = half_bits_to_float(static_cast<std::uint16_t>(blk[0] | (blk[1] << 8)));
      const float dmin = half_bits_to_float(static_cast<std::uint16_t>(blk[2] | (blk[3] << 8)));
      const int c = k / 64, l = k % 64;
      const int j = l < 32 ? 2 * c : 2 * c + 1;
      int sc = 0, m = 0;
      k4_scale_min(j, blk + 4, sc, m);
      const std::uint8_t* qs = blk + (five ? 48 : 16) + 32 * c + (l & 31);
      const std::uint8_t* qh = blk + 16 + (l & 31);
      const int shift = l < 32 ? 0 : 4;
      const float ds = d * static_cast<float>(sc), dm = dmin * static_cast<float>(m);
      for (int i = 0; i < 8; ++i) {
        int v = (qs[i] >> shift) & 0xF;
        if (five) v |= ((qh[i] >> j) & 1) << 4;
        out[i] = ds * static_cast<float>(v) - dm;
      }
      return;
    }
    case ggml_type::q6_k: {
      const std::size_t b = e / 256;
      const int k = static_cast<int>(e % 256);
      const int n = k / 128, r = k % 128, g = r / 32, l = r % 32;
      const std::uint8_t* blk = reinterpret_cast<const std::uint8_t*>(w.qs) + b * 192;
      const std::uint8_t* ql = blk + 64 * n + (g & 1) * 32 + l;
      const std::uint8_t* qh = blk + 128 + 32 * n + l;
      const std::int8_t sc = reinterpret_cast<const std::int8_t*>(w.aux)[b * 16 + 8 * n + l / 16 + 2 * g];
      const float d = half_bits_to_float(w.d[b]) * static_cast<float>(sc);
      const int ns = (g >> 1) * 4;
      for (int i = 0; i < 8; ++i) {
        const int v = ((ql[i] >> ns) & 0xF) | (((qh[i] >> (2 * g)) & 3) << 4);
        out[i] = d * static_cast<float>(v - 32);
      }
      return;
    }
    default:
      for (int i = 0; i < 8; ++i) out[i] = __int_as_float(0x7fc00000);  // NaN: unsupported type
      return;
  }
}

}  // namespace worker::gpu::blocks
