// Seeded, counter-based random values of synthetic tensors. Element i of a tensor is a pure function of
// (seed, tensor name, i), so any slice can be produced by any thread in any order and the result is
// bit-identical for every thread count and machine; tests regenerate the exact floats a file was
// quantized from. The name (not the position in the file) keys the stream, so the same preset and seed
// give the same underlying floats under every --weights scheme.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "model/synth/synth_preset.hpp"

namespace worker::model::synth {

// The per-tensor stream key: splitmix64 of the seed mixed with the FNV-1a hash of the name.
std::uint64_t synth_tensor_key(std::uint64_t seed, std::string_view tensor_name);

// out[j] = value of element first_element + j: center + half_width·u with u uniform in (-1, 1), u from
// the top 24 bits of splitmix64(key + (i+1)·γ). Only float arithmetic that is exact or correctly
// rounded is used, so the values do not depend on the compiler's floating-point contraction choices.
void synth_fill(std::uint64_t key, synth_distribution dist, std::uint64_t first_element, std::span<float> out);

// The values of rows [row_begin, row_begin + out.size() / ne[0]) of `tensor` (out.size() a multiple of
// ne[0]), honouring quiet_row_begin: exactly what the generator quantizes for that slice.
void synth_fill_rows(std::uint64_t seed, const synth_tensor& tensor, std::int64_t row_begin, std::span<float> out);

}  // namespace worker::model::synth
