// Stop strings matched on generated text, across token boundaries. Text goes in as the stream decoder
// produces it (whole code points); what comes out is safe to send: any tail that could still grow into a
// stop string is held back, and when a stop string completes, the text before it is released and the stop
// string itself never is. Matching is on bytes of valid UTF-8, so a match always starts on a code point.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace worker::model {

class stop_matcher {
 public:
  // Throws std::invalid_argument for an empty stop string.
  explicit stop_matcher(std::vector<std::string> stops);

  struct result {
    std::string text;                 // safe to emit now
    std::optional<std::size_t> stop;  // index of the stop string that matched; set once, then sticky
  };

  // Adds newly generated text. After a stop has matched, input is ignored and `text` stays empty.
  result push(std::string_view text);
  // End of generation without a stop: releases what was held back.
  std::string flush();

  bool stopped() const { return stopped_.has_value(); }
  std::size_t held_bytes() const { return held_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string held_;  // unemitted text: shorter than the longest stop string once push returns
  std::optional<std::size_t> stopped_;
};

}  // namespace worker::model
