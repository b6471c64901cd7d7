// Block geometry of every ggml type id, from ggml-common.h (static_asserts there give the sizes).
#include "model/ggml_type.hpp"

#include <array>
#include <cassert>

namespace worker::model {
namespace {

struct type_entry {
  std::uint32_t id;
  ggml_type_traits traits;
};

// K-quants use 256-element super-blocks (QK_K); legacy quants and MXFP4 use 32.
constexpr std::array<type_entry, 32> k_types{{
    {0, {"f32", 1, 4, true}},
    {1, {"f16", 1, 2, true}},
    {2, {"q4_0", 32, 18, true}},
    {3, {"q4_1", 32, 20, false}},
    {6, {"q5_0", 32, 22, true}},
    {7, {"q5_1", 32, 24, false}},
    {8, {"q8_0", 32, 34, true}},
    {9, {"q8_1", 32, 36, false}},
    {10, {"q2_k", 256, 84, false}},
    {11, {"q3_k", 256, 110, false}},
    {12, {"q4_k", 256, 144, true}},
    {13, {"q5_k", 256, 176, true}},
    {14, {"q6_k", 256, 210, true}},
    {15, {"q8_k", 256, 292, false}},
    {16, {"iq2_xxs", 256, 66, false}},
    {17, {"iq2_xs", 256, 74, false}},
    {18, {"iq3_xxs", 256, 98, false}},
    {19, {"iq1_s", 256, 50, false}},
    {20, {"iq4_nl", 32, 18, false}},
    {21, {"iq3_s", 256, 110, false}},
    {22, {"iq2_s", 256, 82, false}},
    {23, {"iq4_xs", 256, 136, false}},
    {24, {"i8", 1, 1, false}},
    {25, {"i16", 1, 2, false}},
    {26, {"i32", 1, 4, false}},
    {27, {"i64", 1, 8, false}},
    {28, {"f64", 1, 8, false}},
    {29, {"iq1_m", 256, 56, false}},
    {30, {"bf16", 1, 2, true}},
    {34, {"tq1_0", 256, 54, false}},
    {35, {"tq2_0", 256, 66, false}},
    {39, {"mxfp4", 32, 17, true}},
}};

}  // namespace

std::optional<ggml_type_traits> ggml_type_traits_of(std::uint32_t type_id) {
  for (const auto& e : k_types) {
    if (e.id == type_id) return e.traits;
  }
  return std::nullopt;
}

const ggml_type_traits& traits(ggml_type type) {
  for (const auto& e : k_types) {
    if (e.id == static_cast<std::uint32_t>(type)) return e.traits;
  }
  assert(false && "ggml_type value outside the known table");
  return k_types[0].traits;
}

std::optional<ggml_type> ggml_type_from_name(std::string_view name) {
  for (const auto& e : k_types) {
    if (e.traits.name == name) return static_cast<ggml_type>(e.id);
  }
  return std::nullopt;
}

}  // namespace worker::model
