// Incremental, UTF-8-safe detokenizer. See stream_decoder.hpp.
#include "model/tokenizer/stream_decoder.hpp"

#include "model/tokenizer/utf8.hpp"

namespace worker::model {

namespace {

constexpr std::string_view k_replacement = "\xEF\xBF\xBD";  // U+FFFD

// Length of the maximal subpart at `pos` of an invalid sequence: the longest run that is still a valid
// prefix of some code point, at least 1 byte.
std::size_t invalid_subpart(std::string_view bytes, std::size_t pos) {
  std::size_t len = 1;
  while (pos + len < bytes.size() && len < 4 && utf8_check_sequence(bytes.substr(pos, len + 1), 0) == 0) ++len;
  return len;
}

}  // namespace

std::string utf8_take_complete(std::string_view bytes, std::string& rest) {
  std::string out;
  out.reserve(bytes.size());
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    const int len = utf8_check_sequence(bytes, pos);
    if (len > 0) {
      out.append(bytes.substr(pos, static_cast<std::size_t>(len)));
      pos += static_cast<std::size_t>(len);
    } else if (len == 0) {
      break;  // a valid prefix cut off by the end: wait for more bytes
    } else {
      out += k_replacement;
      pos += invalid_subpart(bytes, pos);
    }
  }
  rest.assign(bytes.substr(pos));
  return out;
}

std::string stream_decoder::push(token_id id) { return push_bytes(tok_->token_bytes(id, mode_)); }

std::string stream_decoder::push_bytes(std::string_view bytes) {
  if (bytes.empty()) return {};
  pending_.append(bytes);
  std::string rest;
  std::string out = utf8_take_complete(pending_, rest);
  pending_ = std::move(rest);
  return out;
}

std::string stream_decoder::flush() {
  std::string out;
  if (!pending_.empty()) {
    // Whatever is held is an unfinished sequence: it can no longer complete.
    std::size_t pos = 0;
    while (pos < pending_.size()) {
      out += k_replacement;
      pos += invalid_subpart(pending_, pos);
    }
    pending_.clear();
  }
  return out;
}

}  // namespace worker::model
