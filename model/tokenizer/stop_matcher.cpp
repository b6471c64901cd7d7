// Stop strings across token boundaries with hold-back. See stop_matcher.hpp.
#include "model/tokenizer/stop_matcher.hpp"

#include <algorithm>
#include <stdexcept>

namespace worker::model {

stop_matcher::stop_matcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) {
    if (s.empty()) throw std::invalid_argument("stop strings must not be empty");
  }
}

stop_matcher::result stop_matcher::push(std::string_view text) {
  result r;
  if (stopped_) {
    r.stop = stopped_;
    return r;
  }
  held_.append(text);

  // The earliest complete stop string wins; at equal positions, the one listed first.
  std::size_t best_pos = std::string::npos;
  for (std::size_t i = 0; i < stops_.size(); ++i) {
    const std::size_t p = held_.find(stops_[i]);
    if (p < best_pos) {
      best_pos = p;
      stopped_ = i;
    }
  }
  if (stopped_) {
    r.text = held_.substr(0, best_pos);
    r.stop = stopped_;
    held_.clear();
    return r;
  }

  // Hold back the longest suffix that is a proper prefix of some stop string: it may still complete.
  std::size_t keep = 0;
  for (const auto& s : stops_) {
    const std::size_t max_len = std::min(s.size() - 1, held_.size());
    for (std::size_t len = max_len; len > keep; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  r.text = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return r;
}

std::string stop_matcher::flush() {
  if (stopped_) return {};
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace worker::model
