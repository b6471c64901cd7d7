// Row-level entry points of the CPU block-format reference (see quant.hpp): fp16/bf16 conversions, the
// per-type dispatch to the block codecs of quant_legacy.cpp / quant_k.cpp, and the fixed-order dot product.

#include "model/fp_contract_off.hpp"  // first: bit-identical codecs everywhere

#include "model/quant.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/quant_impl.hpp"

namespace worker::model {
namespace {

using namespace quant_detail;

using dequantize_block_fn = void (*)(const std::uint8_t*, float*);
using quantize_block_fn = void (*)(const float*, std::uint8_t*);

// The block types with their codecs; block geometry comes from ggml_type.cpp's table.
struct block_codec {
  ggml_type type;
  dequantize_block_fn dequantize;
  quantize_block_fn quantize;
};

constexpr block_codec k_block_codecs[] = {
    {ggml_type::q8_0, dequantize_block_q8_0, quantize_block_q8_0},
    {ggml_type::q4_0, dequantize_block_q4_0, quantize_block_q4_0},
    {ggml_type::q5_0, dequantize_block_q5_0, quantize_block_q5_0},
    {ggml_type::q4_k, dequantize_block_q4_k, quantize_block_q4_k},
    {ggml_type::q5_k, dequantize_block_q5_k, quantize_block_q5_k},
    {ggml_type::q6_k, dequantize_block_q6_k, quantize_block_q6_k},
    {ggml_type::mxfp4, dequantize_block_mxfp4, quantize_block_mxfp4},
};

// Plain float types are handled element-wise; dot_row sums them in chunks of this many elements.
constexpr std::size_t k_plain_chunk = 32;
constexpr std::size_t k_max_block_elems = 256;

const block_codec* find_codec(ggml_type type) {
  for (const auto& c : k_block_codecs) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

bool is_plain(ggml_type type) {
  return type == ggml_type::f32 || type == ggml_type::f16 || type == ggml_type::bf16;
}

// Validates the type and n, returning the block size. Throws std::invalid_argument for an unknown or
// unsupported type and for a length that is not a whole number of blocks.
std::size_t checked_block_elems(const char* what, ggml_type type, std::size_t n) {
  const auto id = static_cast<std::uint32_t>(type);
  const auto t = ggml_type_traits_of(id);
  if (!t) {
    throw std::invalid_argument(std::string(what) + ": unknown ggml type id " + std::to_string(id));
  }
  if (!is_plain(type) && find_codec(type) == nullptr) {
    throw std::invalid_argument(std::string(what) + ": ggml type '" + std::string(t->name) +
                                "' is not supported (supported: f32, f16, bf16, q8_0, q4_0, q5_0, "
                                "q4_k, q5_k, q6_k, mxfp4)");
  }
  if (n % t->block_elems != 0) {
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(n) + " elements is not a " +
                                "multiple of the " + std::string(t->name) + " block size " +
                                std::to_string(t->block_elems));
  }
  return t->block_elems;
}

// Σ a[i]·b[i] for i < len in a fixed order: eight interleaved fp32 partial sums (element i goes to
// lane i % 8), combined pairwise. The order is part of the contract, so the compiler may vectorize
// the lanes but never reassociates across them.
float lane_dot(const float* a, const float* b, std::size_t len) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  std::size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    for (std::size_t l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  }
  for (std::size_t l = 0; i + l < len; ++l) acc[l] += a[i + l] * b[i + l];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Block quantizers see only finite inputs of moderate size: NaN becomes 0 and anything beyond ±2^60
// (inf included) becomes ±2^60. No block format can represent such values anyway (their fp16
// scales saturate near 2^16), and with this bound no intermediate (squares, sums of 256) overflows.
void sanitize_block(const float* x, float* out, std::size_t len) {
  constexpr float k_limit = 0x1p60f;
  for (std::size_t i = 0; i < len; ++i) {
    const float v = x[i];
    out[i] = std::isnan(v) ? 0.0f : (v > k_limit ? k_limit : (v < -k_limit ? -k_limit : v));
  }
}

void plain_to_f32(ggml_type type, const void* src, float* dst, std::size_t n) {
  if (type == ggml_type::f32) {
    std::memcpy(dst, src, n * sizeof(float));
    return;
  }
  const auto* p = static_cast<const std::uint8_t*>(src);
  const bool half = type == ggml_type::f16;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint16_t v = load_u16le(p + 2 * i);
    dst[i] = half ? fp16_to_fp32(v) : bf16_to_fp32(v);
  }
}

}  // namespace

namespace quant_detail {

std::uint16_t fp16_scale(float d) {
  constexpr float k_max_half = 65504.0f;
  return fp32_to_fp16(d > k_max_half ? k_max_half : (d < -k_max_half ? -k_max_half : d));
}

}  // namespace quant_detail

// --- fp16 / bf16 ---------------------------------------------------------------------------------

float fp16_to_fp32(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  const std::uint32_t man = h & 0x3FFu;
  if (exp == 0) {
    // Zero or subnormal: man · 2^-24, exact in fp32.
    const float v = static_cast<float>(man) * 0x1p-24f;
    return sign ? -v : v;
  }
  // Inf/NaN keep their payload; normals rebias the exponent from 15 to 127.
  const std::uint32_t bits =
      exp == 0x1F ? (sign | 0x7F800000u | (man << 13)) : (sign | ((exp + 112) << 23) | (man << 13));
  return std::bit_cast<float>(bits);
}

std::uint16_t fp32_to_fp16(float f) {
  std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  u &= 0x7FFFFFFFu;
  if (u > 0x7F800000u) {
    // NaN stays NaN: keep the top payload bits and force the quiet bit so it can't become inf.
    return static_cast<std::uint16_t>(sign | 0x7E00u | ((u >> 13) & 0x3FFu));
  }
  if (u >= 0x477FF000u) {
    // >= 65520 (halfway between 65504 and 2^16) rounds to inf under ties-to-even; inf stays inf.
    return static_cast<std::uint16_t>(sign | 0x7C00u);
  }
  if (u >= 0x38800000u) {
    // Normal half (>= 2^-14): rebias the exponent, drop 13 mantissa bits with ties-to-even. A carry
    // out of the mantissa correctly bumps the exponent.
    const std::uint32_t v = u - (112u << 23);
    std::uint32_t h = v >> 13;
    const std::uint32_t rem = v & 0x1FFFu;
    h += (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ? 1u : 0u;
    return static_cast<std::uint16_t>(sign | h);
  }
  if (u <= 0x33000000u) {
    // <= 2^-25: half of the smallest subnormal or less rounds to (signed) zero; the tie goes to even 0.
    return sign;
  }
  // Subnormal half: value = man·2^(exp-150) = (man >> shift) units of 2^-24 with shift = 126 - exp
  // in [14, 24]. Rounding up to 0x400 yields the smallest normal, which is the right encoding.
  const std::uint32_t exp = u >> 23;
  const std::uint32_t man = (u & 0x7FFFFFu) | 0x800000u;
  const std::uint32_t shift = 126 - exp;
  std::uint32_t h = man >> shift;
  const std::uint32_t rem = man & ((1u << shift) - 1u);
  const std::uint32_t halfway = 1u << (shift - 1);
  h += (rem > halfway || (rem == halfway && (h & 1u))) ? 1u : 0u;
  return static_cast<std::uint16_t>(sign | h);
}

float bf16_to_fp32(std::uint16_t b) { return std::bit_cast<float>(static_cast<std::uint32_t>(b) << 16); }

std::uint16_t fp32_to_bf16(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
    // NaN: truncate and set the quiet bit; rounding could carry a low-payload NaN into inf.
    return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
  }
  // Ties-to-even on the 16 dropped bits; overflow of the largest finite values correctly gives inf.
  const std::uint32_t lsb = (u >> 16) & 1u;
  return static_cast<std::uint16_t>((u + 0x7FFFu + lsb) >> 16);
}

// --- rows ----------------------------------------------------------------------------------------

void dequantize_row(ggml_type type, const void* src, float* dst, std::size_t n) {
  const std::size_t be = checked_block_elems("dequantize_row", type, n);
  if (is_plain(type)) {
    plain_to_f32(type, src, dst, n);
    return;
  }
  const block_codec* codec = find_codec(type);
  const std::size_t bb = traits(type).block_bytes;
  const auto* p = static_cast<const std::uint8_t*>(src);
  for (std::size_t b = 0; b < n / be; ++b) codec->dequantize(p + b * bb, dst + b * be);
}

void quantize_row(ggml_type type, const float* src, void* dst, std::size_t n) {
  const std::size_t be = checked_block_elems("quantize_row", type, n);
  auto* p = static_cast<std::uint8_t*>(dst);
  if (type == ggml_type::f32) {
    std::memcpy(dst, src, n * sizeof(float));
    return;
  }
  if (type == ggml_type::f16 || type == ggml_type::bf16) {
    const bool half = type == ggml_type::f16;
    for (std::size_t i = 0; i < n; ++i) {
      store_u16le(p + 2 * i, half ? fp32_to_fp16(src[i]) : fp32_to_bf16(src[i]));
    }
    return;
  }
  const block_codec* codec = find_codec(type);
  const std::size_t bb = traits(type).block_bytes;
  float clean[k_max_block_elems];
  for (std::size_t b = 0; b < n / be; ++b) {
    sanitize_block(src + b * be, clean, be);
    codec->quantize(clean, p + b * bb);
  }
}

float dot_row(ggml_type type, const void* row, const float* x, std::size_t n) {
  const std::size_t be = checked_block_elems("dot_row", type, n);
  float total = 0.0f;
  if (is_plain(type)) {
    // Chunks of 32 elements play the role of blocks (the last chunk may be short).
    const auto* p = static_cast<const std::uint8_t*>(row);
    const std::size_t es = traits(type).block_bytes;
    float buf[k_plain_chunk];
    for (std::size_t i = 0; i < n; i += k_plain_chunk) {
      const std::size_t len = n - i < k_plain_chunk ? n - i : k_plain_chunk;
      plain_to_f32(type, p + i * es, buf, len);
      total += lane_dot(buf, x + i, len);
    }
    return total;
  }
  const block_codec* codec = find_codec(type);
  const std::size_t bb = traits(type).block_bytes;
  const auto* p = static_cast<const std::uint8_t*>(row);
  float buf[k_max_block_elems];
  for (std::size_t b = 0; b < n / be; ++b) {
    codec->dequantize(p + b * bb, buf);
    total += lane_dot(buf, x + b * be, be);
  }
  return total;
}

}  // namespace worker::model
