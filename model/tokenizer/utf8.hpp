// UTF-8 validation, decoding and encoding for the tokenizer. Input text is validated once at the edge
// (tokenizer::encode, the CLI): invalid bytes are a typed utf8_error that says which byte and why, never
// a silent U+FFFD. Output text (token bytes) may legitimately split a code point across tokens; the
// streaming decoder (stream_decoder.hpp) uses utf8_sequence_length to hold such partial sequences back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace worker::model {

enum class utf8_error_kind {
  invalid_lead_byte,    // 0x80..0xC1 or 0xF5..0xFF where a sequence must start
  truncated_sequence,   // the text ends inside a multi-byte sequence
  bad_continuation,     // a byte inside a sequence is not 10xxxxxx
  overlong_encoding,    // e.g. C0 80 for U+0000, E0 80 80, F0 80 80 80
  surrogate,            // ED A0 80 .. ED BF BF (U+D800..U+DFFF)
  out_of_range,         // above U+10FFFF (F4 90 .. )
};

std::string_view to_string(utf8_error_kind kind);

// Where and why a byte string is not UTF-8. `offset` is the byte index of the sequence's first byte.
class utf8_error : public std::invalid_argument {
 public:
  utf8_error(utf8_error_kind kind, std::size_t offset);
  utf8_error_kind kind() const { return kind_; }
  std::size_t offset() const { return offset_; }

 private:
  utf8_error_kind kind_;
  std::size_t offset_;
};

struct utf8_problem {
  utf8_error_kind kind;
  std::size_t offset;
};

// The first problem in `text`, or nullopt when it is valid UTF-8 (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF).
std::optional<utf8_problem> utf8_find_problem(std::string_view text);

// Throws utf8_error on the first problem.
void utf8_validate(std::string_view text);

// Decodes valid UTF-8 (validate first) into code points; `offsets` (optional) gets each code point's byte
// offset plus a final entry equal to text.size(), shape [n_cp + 1].
std::vector<char32_t> utf8_decode(std::string_view text, std::vector<std::uint32_t>* offsets = nullptr);

// Appends the UTF-8 encoding of `cp` (a valid scalar value) to `out`.
void utf8_append(std::string& out, char32_t cp);

// Length of the sequence a lead byte announces: 1..4, or 0 for a byte that cannot start a sequence.
inline int utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xC2) return 0;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  if (lead < 0xF5) return 4;
  return 0;
}

// Checks the sequence starting at text[pos]. Returns its length (1..4) when complete and valid, 0 when
// `text` ends before the sequence does but every byte so far is valid (a prefix of some code point), and
// -1 when it is invalid.
int utf8_check_sequence(std::string_view text, std::size_t pos);

}  // namespace worker::model
