// Typed errors of the tokenizer layer. Invalid UTF-8 input has its own type (utf8_error in utf8.hpp) so
// that callers can report the byte offset.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace worker::model {

enum class tokenizer_error_code {
  unsupported_model,  // tokenizer.ggml.model is not "gpt2" (byte-level BPE)
  unsupported_pre,    // tokenizer.ggml.pre names a pre-tokenizer we do not implement
  bad_vocab,          // inconsistent arrays, a normal token that is not byte-level text, a missing byte token
  bad_merge,          // a merge that is not "A B" over known tokens, or whose result is not a token
  bad_token_id,       // an id outside the vocabulary (decode, CLI input)
  missing_token,      // a token a chat format needs (e.g. <|im_start|>) is not in the vocabulary
};

std::string_view to_string(tokenizer_error_code code);

class tokenizer_error : public std::runtime_error {
 public:
  tokenizer_error(tokenizer_error_code code, const std::string& detail)
      : std::runtime_error(std::string(to_string(code)) + ": " + detail), code_(code) {}
  tokenizer_error_code code() const { return code_; }

 private:
  tokenizer_error_code code_;
};

}  // namespace worker::model
