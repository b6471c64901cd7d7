// GPT-2 byte-level alphabet (model-facts.md §6.3): every byte maps to one printable code point, so BPE
// tokens of arbitrary bytes are stored as text. Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF map to themselves;
// the 68 others (0x00-0x20, 0x7F-0xA0, 0xAD), in ascending order, to U+0100, U+0101, ... (space -> U+0120 'Ġ').
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace worker::model {

// The code point byte `b` is written as.
char32_t byte_to_code_point(std::uint8_t b);

// The byte a code point stands for, or nullopt when it is not in the alphabet.
std::optional<std::uint8_t> code_point_to_byte(char32_t cp);

// Byte-level text (a token as GGUF/tokenizer.json store it) -> raw bytes. nullopt when `text` is not valid
// UTF-8 or holds a code point outside the alphabet.
std::optional<std::string> byte_level_decode(std::string_view text);
// Same, appending to `out`; false (with `out` partly appended) when `text` is not byte-level text.
bool byte_level_decode_append(std::string_view text, std::string& out);

// Raw bytes -> byte-level text.
std::string byte_level_encode(std::string_view bytes);

}  // namespace worker::model
