// Strict UTF-8 validation for strings arriving on the wire (RFC 3629: no overlong forms, no surrogates,
// nothing above U+10FFFF). Protocol sits below model/, so it carries its own small validator.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace worker::protocol {

// Byte offset of the first invalid sequence, or nullopt when `text` is valid UTF-8.
std::optional<std::size_t> find_invalid_utf8(std::string_view text);

inline bool is_valid_utf8(std::string_view text) { return !find_invalid_utf8(text).has_value(); }

}  // namespace worker::protocol
