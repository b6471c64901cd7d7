// GPT-2 byte-level alphabet. See byte_level.hpp.
#include "model/tokenizer/byte_level.hpp"

#include <array>

#include "model/tokenizer/utf8.hpp"

namespace worker::model {

namespace {

bool maps_to_itself(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); }

struct alphabet {
  std::array<char32_t, 256> to_cp{};
  std::array<std::int16_t, 0x144> to_byte{};  // every mapped code point is < U+0100 + 68 = U+0144
  alphabet() {
    to_byte.fill(-1);
    unsigned next = 0;
    for (unsigned b = 0; b < 256; ++b) {
      to_cp[b] = maps_to_itself(b) ? char32_t(b) : char32_t(0x100 + next++);
      to_byte[to_cp[b]] = static_cast<std::int16_t>(b);
    }
  }
};

const alphabet& table() {
  static const alphabet a;
  return a;
}

}  // namespace

char32_t byte_to_code_point(std::uint8_t b) { return table().to_cp[b]; }

std::optional<std::uint8_t> code_point_to_byte(char32_t cp) {
  if (cp >= table().to_byte.size() || table().to_byte[cp] < 0) return std::nullopt;
  return static_cast<std::uint8_t>(table().to_byte[cp]);
}

std::optional<std::string> byte_level_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  if (!byte_level_decode_append(text, out)) return std::nullopt;
  return out;
}

bool byte_level_decode_append(std::string_view text, std::string& out) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const alphabet& a = table();
  std::size_t pos = 0;
  while (pos < text.size()) {
    char32_t cp;
    if (s[pos] < 0x80) {
      cp = s[pos];
      pos += 1;
    } else if (s[pos] >= 0xC2 && s[pos] < 0xE0 && pos + 1 < text.size() && (s[pos + 1] & 0xC0) == 0x80) {
      cp = (char32_t(s[pos] & 0x1F) << 6) | (s[pos + 1] & 0x3F);
      pos += 2;
    } else {
      return false;  // the alphabet lies below U+0800: longer sequences and invalid bytes are not in it
    }
    if (cp >= a.to_byte.size() || a.to_byte[cp] < 0) return false;
    out.push_back(static_cast<char>(a.to_byte[cp]));
  }
  return true;
}

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8_append(out, byte_to_code_point(b));
  return out;
}

}  // namespace worker::model
