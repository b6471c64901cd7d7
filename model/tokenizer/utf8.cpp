// UTF-8 validation and conversion (RFC 3629). See utf8.hpp.
#include "model/tokenizer/utf8.hpp"

#include <string>

namespace worker::model {

std::string_view to_string(utf8_error_kind kind) {
  switch (kind) {
    case utf8_error_kind::invalid_lead_byte: return "invalid lead byte";
    case utf8_error_kind::truncated_sequence: return "truncated sequence";
    case utf8_error_kind::bad_continuation: return "bad continuation byte";
    case utf8_error_kind::overlong_encoding: return "overlong encoding";
    case utf8_error_kind::surrogate: return "encoded surrogate";
    case utf8_error_kind::out_of_range: return "code point above U+10FFFF";
  }
  return "unknown";
}

namespace {

std::string describe(utf8_error_kind kind, std::size_t offset) {
  return "invalid UTF-8 at byte " + std::to_string(offset) + ": " + std::string(to_string(kind));
}

// Classifies the sequence at pos. On success returns the length; otherwise sets `kind` and returns 0
// (for a valid-but-cut-short prefix, kind is truncated_sequence).
int check(std::string_view text, std::size_t pos, utf8_error_kind& kind) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  const unsigned char b0 = s[pos];
  if (b0 < 0x80) return 1;
  const int len = utf8_sequence_length(b0);
  if (len == 0) {
    // C0/C1 can only start an overlong 2-byte form; F5..FF would exceed U+10FFFF or are never valid.
    kind = (b0 == 0xC0 || b0 == 0xC1) ? utf8_error_kind::overlong_encoding
           : (b0 >= 0xF5 && b0 <= 0xF7) ? utf8_error_kind::out_of_range
                                        : utf8_error_kind::invalid_lead_byte;
    return 0;
  }
  // The second byte's allowed range depends on the lead byte (Unicode Table 3-7): this is what rules out
  // overlongs, surrogates and values above U+10FFFF.
  unsigned char lo = 0x80, hi = 0xBF;
  utf8_error_kind second_kind = utf8_error_kind::bad_continuation;
  if (b0 == 0xE0) { lo = 0xA0; second_kind = utf8_error_kind::overlong_encoding; }
  if (b0 == 0xED) { hi = 0x9F; second_kind = utf8_error_kind::surrogate; }
  if (b0 == 0xF0) { lo = 0x90; second_kind = utf8_error_kind::overlong_encoding; }
  if (b0 == 0xF4) { hi = 0x8F; second_kind = utf8_error_kind::out_of_range; }
  for (int i = 1; i < len; ++i) {
    if (pos + i >= n) {
      kind = utf8_error_kind::truncated_sequence;
      return 0;
    }
    const unsigned char b = s[pos + i];
    if (b < 0x80 || b > 0xBF) {
      kind = utf8_error_kind::bad_continuation;
      return 0;
    }
    if (i == 1 && (b < lo || b > hi)) {
      kind = second_kind;
      return 0;
    }
  }
  return len;
}

}  // namespace

utf8_error::utf8_error(utf8_error_kind kind, std::size_t offset)
    : std::invalid_argument(describe(kind, offset)), kind_(kind), offset_(offset) {}

std::optional<utf8_problem> utf8_find_problem(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t pos = 0;
  while (pos < text.size()) {
    // ASCII fast path: 8 bytes at a time while none has the top bit set.
    while (pos + 8 <= text.size()) {
      std::uint64_t word = 0;
      for (int i = 0; i < 8; ++i) word |= static_cast<std::uint64_t>(s[pos + i]) << (8 * i);
      if (word & 0x8080808080808080ULL) break;
      pos += 8;
    }
    if (pos >= text.size()) break;
    utf8_error_kind kind{};
    const int len = check(text, pos, kind);
    if (len == 0) return utf8_problem{kind, pos};
    pos += static_cast<std::size_t>(len);
  }
  return std::nullopt;
}

void utf8_validate(std::string_view text) {
  if (auto problem = utf8_find_problem(text)) throw utf8_error(problem->kind, problem->offset);
}

int utf8_check_sequence(std::string_view text, std::size_t pos) {
  utf8_error_kind kind{};
  const int len = check(text, pos, kind);
  if (len > 0) return len;
  return kind == utf8_error_kind::truncated_sequence ? 0 : -1;
}

std::vector<char32_t> utf8_decode(std::string_view text, std::vector<std::uint32_t>* offsets) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  if (offsets) {
    offsets->clear();
    offsets->reserve(text.size() + 1);
  }
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (offsets) offsets->push_back(static_cast<std::uint32_t>(pos));
    const unsigned char b0 = s[pos];
    char32_t cp;
    if (b0 < 0x80) {
      cp = b0;
      pos += 1;
    } else if (b0 < 0xE0) {
      cp = (char32_t(b0 & 0x1F) << 6) | (s[pos + 1] & 0x3F);
      pos += 2;
    } else if (b0 < 0xF0) {
      cp = (char32_t(b0 & 0x0F) << 12) | (char32_t(s[pos + 1] & 0x3F) << 6) | (s[pos + 2] & 0x3F);
      pos += 3;
    } else {
      cp = (char32_t(b0 & 0x07) << 18) | (char32_t(s[pos + 1] & 0x3F) << 12) |
           (char32_t(s[pos + 2] & 0x3F) << 6) | (s[pos + 3] & 0x3F);
      pos += 4;
    }
    out.push_back(cp);
  }
  if (offsets) offsets->push_back(static_cast<std::uint32_t>(text.size()));
  return out;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace worker::model
