// Strict UTF-8 validation of wire strings: every class of ill-formed sequence is found at its offset.
#include <catch2/catch.hpp>

#include "protocol/utf8.hpp"

using worker::protocol::find_invalid_utf8;
using worker::protocol::is_valid_utf8;

TEST_CASE("valid UTF-8 of every length is accepted", "[utf8]") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ascii"));
  CHECK(is_valid_utf8("caf\xc3\xa9"));                    // é, 2 bytes
  CHECK(is_valid_utf8("\xe4\xbd\xa0\xe5\xa5\xbd"));       // 你好, 3 bytes each
  CHECK(is_valid_utf8("\xf0\x9f\x9a\x80"));               // 🚀, 4 bytes
  CHECK(is_valid_utf8("\xef\xbb\xbf" "BOM"));             // BOM is a valid code point
  CHECK(is_valid_utf8(std::string_view("nul\0inside", 10)));
  CHECK(is_valid_utf8("\xf4\x8f\xbf\xbf"));               // U+10FFFF, the last code point
  CHECK(is_valid_utf8("\xed\x9f\xbf"));                   // U+D7FF, just below the surrogates
}

TEST_CASE("ill-formed UTF-8 is rejected at the offending byte", "[utf8]") {
  CHECK(find_invalid_utf8("ab\x80") == 2u);               // lone continuation byte
  CHECK(find_invalid_utf8("\xc3\x28") == 0u);             // lead without continuation
  CHECK(find_invalid_utf8("x\xc0\x80") == 1u);            // overlong NUL
  CHECK(find_invalid_utf8("\xc1\xbf") == 0u);             // overlong 2-byte
  CHECK(find_invalid_utf8("\xe0\x80\xaf") == 0u);         // overlong 3-byte
  CHECK(find_invalid_utf8("\xf0\x80\x80\xaf") == 0u);     // overlong 4-byte
  CHECK(find_invalid_utf8("\xed\xa0\x80") == 0u);         // surrogate U+D800
  CHECK(find_invalid_utf8("\xf4\x90\x80\x80") == 0u);     // above U+10FFFF
  CHECK(find_invalid_utf8("\xf5\x80\x80\x80") == 0u);     // invalid lead F5
  CHECK(find_invalid_utf8("\xff") == 0u);
  CHECK(find_invalid_utf8("ok\xf0\x9f\x9a") == 2u);       // 🚀 truncated after 3 bytes
  CHECK(find_invalid_utf8("ok\xe4\xbd") == 2u);           // 你 truncated after 2 bytes
  CHECK(find_invalid_utf8("\xe4\x28\xa0") == 0u);         // bad second byte of a 3-byte sequence
  CHECK(find_invalid_utf8("\xf0\x9f\x28\x80") == 0u);     // bad third byte of a 4-byte sequence
}
