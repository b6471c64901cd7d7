// Comma-separated lists, as switches and options spell them ("legacy,nopf", "1,4,16"): one splitter for
// the command-line options and the measuring switches read from the environment.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace worker::model {

// The items of `text` between commas, in order; empty items (",," or a trailing comma) are dropped.
inline std::vector<std::string> split_comma_list(std::string_view text) {
  std::vector<std::string> items;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t end = std::min(text.find(',', at), text.size());
    if (end > at) items.emplace_back(text.substr(at, end - at));
    at = end + 1;
  }
  return items;
}

}  // namespace worker::model
