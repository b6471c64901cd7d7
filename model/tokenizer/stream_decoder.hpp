// Incremental detokenizer for streaming: tokens go in one at a time, text comes out only as whole UTF-8
// code points. A token may end inside a code point (a 4-byte emoji split over 2-4 byte tokens, a CJK
// character over 2); those bytes are held until the rest arrives. Valid text therefore never produces
// U+FFFD. Bytes that can never become valid UTF-8 (a model emitting a stray continuation byte) are replaced
// by U+FFFD, one per maximal invalid subpart (Unicode §3.9), so the output is always valid UTF-8.
#pragma once

#include <string>
#include <string_view>

#include "model/tokenizer/tokenizer.hpp"

namespace worker::model {

class stream_decoder {
 public:
  explicit stream_decoder(const tokenizer& tok, special_rendering mode = special_rendering::skip)
      : tok_(&tok), mode_(mode) {}

  // Adds one token; returns the text completed by it (possibly empty). Throws tokenizer_error for an id
  // outside the vocabulary.
  std::string push(token_id id);
  // Adds raw bytes (e.g. a user-defined token's text); same contract as push.
  std::string push_bytes(std::string_view bytes);
  // End of stream: returns what is still held; an unfinished sequence becomes U+FFFD.
  std::string flush();

  std::size_t held_bytes() const { return pending_.size(); }

 private:
  const tokenizer* tok_;
  special_rendering mode_;
  std::string pending_;  // bytes not yet emitted: at most one incomplete sequence (< 4 bytes)
};

// Emits the longest prefix of `bytes` made of whole code points, replacing invalid subparts with U+FFFD,
// and leaves an incomplete trailing sequence in `rest`. Shared by stream_decoder and tests.
std::string utf8_take_complete(std::string_view bytes, std::string& rest);

}  // namespace worker::model
