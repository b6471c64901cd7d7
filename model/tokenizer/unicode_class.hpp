// Unicode facts the pre-tokenizers need, taken from ICU (never hand-picked ranges): general category
// classes (\p{L}, \p{Lu}, \p{N}, \p{M}, ...), White_Space (\s), simple case folding for the (?i:...)
// contraction group, and NFC normalization (Qwen's tokenizer.json normalizer).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace worker::model {

// Bit set of the classes a code point belongs to.
using cp_flags = std::uint16_t;
inline constexpr cp_flags cp_letter = 1u << 0;        // \p{L}
inline constexpr cp_flags cp_upper = 1u << 1;         // \p{Lu}
inline constexpr cp_flags cp_lower = 1u << 2;         // \p{Ll}
inline constexpr cp_flags cp_title = 1u << 3;         // \p{Lt}
inline constexpr cp_flags cp_modifier = 1u << 4;      // \p{Lm}
inline constexpr cp_flags cp_other_letter = 1u << 5;  // \p{Lo}
inline constexpr cp_flags cp_mark = 1u << 6;          // \p{M}
inline constexpr cp_flags cp_number = 1u << 7;        // \p{N}
inline constexpr cp_flags cp_space = 1u << 8;         // \s: White_Space (as Rust regex, Oniguruma and tiktoken use)
inline constexpr cp_flags cp_cr_lf = 1u << 9;         // U+000D or U+000A

// Classes of one code point (a BMP table built from ICU once, ICU itself above the BMP).
cp_flags unicode_flags(char32_t cp);

// Simple case folding (CaseFolding.txt status C+S), used to match (?i:'s|'t|...) exactly as a Unicode
// regex engine does: U+017F LATIN SMALL LETTER LONG S folds to 's', so "'ſ" is a contraction.
char32_t unicode_fold_case(char32_t cp);

// NFC of valid UTF-8 text. Returns the input unchanged (no copy of work) when ICU's quick check says it
// is already NFC.
std::string unicode_nfc(std::string_view text);
bool unicode_is_nfc(std::string_view text);

// The Unicode version of the character database in use (ICU's), e.g. "15.0".
std::string unicode_version();

}  // namespace worker::model
