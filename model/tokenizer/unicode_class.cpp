// ICU-backed character classes and NFC. See unicode_class.hpp.
#include "model/tokenizer/unicode_class.hpp"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>
#include <unicode/uversion.h>

#include <array>
#include <memory>
#include <stdexcept>

namespace worker::model {

namespace {

cp_flags compute_flags(char32_t cp) {
  const auto c = static_cast<UChar32>(cp);
  cp_flags f = 0;
  switch (u_charType(c)) {
    case U_UPPERCASE_LETTER: f |= cp_letter | cp_upper; break;
    case U_LOWERCASE_LETTER: f |= cp_letter | cp_lower; break;
    case U_TITLECASE_LETTER: f |= cp_letter | cp_title; break;
    case U_MODIFIER_LETTER: f |= cp_letter | cp_modifier; break;
    case U_OTHER_LETTER: f |= cp_letter | cp_other_letter; break;
    case U_NON_SPACING_MARK:
    case U_ENCLOSING_MARK:
    case U_COMBINING_SPACING_MARK: f |= cp_mark; break;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER: f |= cp_number; break;
    default: break;
  }
  if (u_isUWhiteSpace(c)) f |= cp_space;
  if (cp == U'\r' || cp == U'\n') f |= cp_cr_lf;
  return f;
}

struct bmp_table {
  std::array<cp_flags, 0x10000> flags{};
  bmp_table() {
    for (char32_t cp = 0; cp < 0x10000; ++cp) flags[cp] = compute_flags(cp);
  }
};

const bmp_table& table() {
  static const bmp_table t;  // ~65k ICU lookups once, about a millisecond
  return t;
}

const icu::Normalizer2& nfc() {
  static const icu::Normalizer2* instance = [] {
    UErrorCode err = U_ZERO_ERROR;
    const icu::Normalizer2* n = icu::Normalizer2::getNFCInstance(err);
    if (U_FAILURE(err) || n == nullptr) {
      throw std::runtime_error(std::string("ICU NFC normalizer unavailable: ") + u_errorName(err));
    }
    return n;
  }();
  return *instance;
}

bool all_ascii(std::string_view text) {
  for (unsigned char c : text) {
    if (c >= 0x80) return false;
  }
  return true;
}

}  // namespace

cp_flags unicode_flags(char32_t cp) {
  if (cp < 0x10000) return table().flags[cp];
  if (cp > 0x10FFFF) return 0;
  return compute_flags(cp);
}

char32_t unicode_fold_case(char32_t cp) {
  return static_cast<char32_t>(u_foldCase(static_cast<UChar32>(cp), U_FOLD_CASE_DEFAULT));
}

bool unicode_is_nfc(std::string_view text) {
  if (all_ascii(text)) return true;
  UErrorCode err = U_ZERO_ERROR;
  const bool yes = nfc().isNormalizedUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())), err);
  if (U_FAILURE(err)) throw std::runtime_error(std::string("ICU NFC check failed: ") + u_errorName(err));
  return yes;
}

std::string unicode_nfc(std::string_view text) {
  if (unicode_is_nfc(text)) return std::string(text);
  std::string out;
  out.reserve(text.size());
  icu::StringByteSink<std::string> sink(&out);
  UErrorCode err = U_ZERO_ERROR;
  nfc().normalizeUTF8(0, icu::StringPiece(text.data(), static_cast<int32_t>(text.size())), sink, nullptr, err);
  if (U_FAILURE(err)) throw std::runtime_error(std::string("ICU NFC failed: ") + u_errorName(err));
  return out;
}

std::string unicode_version() {
  UVersionInfo v;
  u_getUnicodeVersion(v);
  return std::to_string(v[0]) + "." + std::to_string(v[1]);
}

}  // namespace worker::model
