// Counter-based value streams of synthetic tensors (see synth_values.hpp).
#include "model/synth/synth_values.hpp"

#include <algorithm>
#include <cstddef>

namespace worker::model::synth {
namespace {

constexpr std::uint64_t k_gamma = 0x9E3779B97F4A7C15ull;  // splitmix64 increment (golden ratio)

// splitmix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer.
constexpr std::uint64_t mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr std::uint64_t fnv1a64(std::string_view s) {
  std::uint64_t h = 0xCBF29CE484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ull;
  }
  return h;
}

}  // namespace

std::uint64_t synth_tensor_key(std::uint64_t seed, std::string_view tensor_name) {
  return mix64(mix64(seed) ^ fnv1a64(tensor_name));
}

void synth_fill(std::uint64_t key, synth_distribution dist, std::uint64_t first_element, std::span<float> out) {
  // u = (k - 2^23 + 0.5) / 2^23 for a 24-bit k: symmetric in (-1, 1), never exactly 0 or ±1, and exact
  // in fp32. center + half_width·u is then one multiply and one add, each correctly rounded. The build
  // passes -ffp-contract=off (and never -ffast-math), so no fused multiply-add or reassociation can
  // change the bits between machines or compilers.
  constexpr float k_inv = 1.0f / 8388608.0f;  // 2^-23
  std::uint64_t state = key + (first_element + 1) * k_gamma;
  for (std::size_t j = 0; j < out.size(); ++j, state += k_gamma) {
    const auto k = static_cast<std::int32_t>(mix64(state) >> 40);  // 24 bits
    const float u = (static_cast<float>(k - 8388608) + 0.5f) * k_inv;
    const float scaled = dist.half_width * u;
    out[j] = dist.center + scaled;
  }
}

void synth_fill_rows(std::uint64_t seed, const synth_tensor& tensor, std::int64_t row_begin, std::span<float> out) {
  const std::int64_t ne0 = tensor.ne[0];
  const auto rows = static_cast<std::int64_t>(out.size()) / ne0;
  const std::uint64_t key = synth_tensor_key(seed, tensor.name);
  // Rows before quiet_row_begin use the tensor's distribution, the rest the quiet one; the stream
  // position is the element index either way.
  const std::int64_t split = tensor.quiet_row_begin < 0 ? row_begin + rows
                                                        : std::clamp(tensor.quiet_row_begin, row_begin, row_begin + rows);
  const auto loud = static_cast<std::size_t>((split - row_begin) * ne0);
  synth_fill(key, tensor.dist, static_cast<std::uint64_t>(row_begin * ne0), out.first(loud));
  const synth_distribution quiet{tensor.dist.center, tensor.dist.half_width / k_quiet_row_divisor};
  synth_fill(key, quiet, static_cast<std::uint64_t>(split * ne0), out.subspan(loud));
}

}  // namespace worker::model::synth
