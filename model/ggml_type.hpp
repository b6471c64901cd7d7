// ggml tensor types: ids as stored in GGUF, block geometry, and which ones this worker supports.
// Source of the ids and block sizes: ggml/include/ggml.h and ggml/src/ggml-common.h (facts only, see
// ../shared/docs/model-facts.md §1.3 and §5).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace worker::model {

enum class ggml_type : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q8_1 = 9,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq2_xxs = 16,
  iq2_xs = 17,
  iq3_xxs = 18,
  iq1_s = 19,
  iq4_nl = 20,
  iq3_s = 21,
  iq2_s = 22,
  iq4_xs = 23,
  i8 = 24,
  i16 = 25,
  i32 = 26,
  i64 = 27,
  f64 = 28,
  iq1_m = 29,
  bf16 = 30,
  tq1_0 = 34,
  tq2_0 = 35,
  mxfp4 = 39,
};

struct ggml_type_traits {
  std::string_view name;
  std::uint32_t block_elems;  // elements per block (1 for plain float types)
  std::uint32_t block_bytes;  // bytes per block
  bool supported;             // true for the types real files of our two models contain
};

// Traits for a known type id, or nullopt for an id ggml does not define (e.g. removed ids 4, 5).
std::optional<ggml_type_traits> ggml_type_traits_of(std::uint32_t type_id);

// Traits for a known type (asserts the enum value is one of the listed ones).
const ggml_type_traits& traits(ggml_type type);

inline std::string_view type_name(ggml_type type) { return traits(type).name; }

// Bytes of one row of `row_elems` elements; row_elems must be a multiple of the block size.
inline std::size_t row_bytes(ggml_type type, std::size_t row_elems) {
  const auto& t = traits(type);
  return row_elems / t.block_elems * t.block_bytes;
}

// Parses a lower-case type name ("q4_k", "mxfp4", "f16"); nullopt if unknown.
std::optional<ggml_type> ggml_type_from_name(std::string_view name);

}  // namespace worker::model
