// Streaming harmony output parser. See harmony_parser.hpp.
#include "model/chat/harmony_parser.hpp"

namespace worker::model {

std::string_view to_string(harmony_channel channel) {
  switch (channel) {
    case harmony_channel::analysis: return "analysis";
    case harmony_channel::commentary: return "commentary";
    case harmony_channel::final: return "final";
    case harmony_channel::other: return "other";
  }
  return "other";
}

namespace {

// The word after `key` in `header`, up to a space or the next marker.
std::string word_after(const std::string& header, std::string_view key) {
  const std::size_t p = header.find(key);
  if (p == std::string::npos) return {};
  const std::size_t b = p + key.size();
  const std::size_t e = header.find_first_of(" <", b);
  return header.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

harmony_channel channel_from(const std::string& name) {
  if (name == "analysis") return harmony_channel::analysis;
  if (name == "commentary") return harmony_channel::commentary;
  if (name == "final") return harmony_channel::final;
  return harmony_channel::other;
}

}  // namespace

harmony_parser::harmony_parser(const tokenizer& tok, start at)
    : tok_(&tok),
      start_(tok.require_special("<|start|>")),
      end_(tok.require_special("<|end|>")),
      message_(tok.require_special("<|message|>")),
      return_(tok.require_special("<|return|>")),
      call_(tok.require_special("<|call|>")),
      state_(at == start::header ? state::header : state::message),
      channel_(at == start::header ? harmony_channel::other : harmony_channel::final),
      decoder_(tok) {}

void harmony_parser::begin_message(std::vector<harmony_event>&) {
  channel_ = channel_from(word_after(header_, "<|channel|>"));
  recipient_ = word_after(header_, "to=");
  header_.clear();
  state_ = state::message;
}

void harmony_parser::end_message(harmony_event::kind kind, std::vector<harmony_event>& out) {
  if (std::string rest = decoder_.flush(); !rest.empty()) {
    out.push_back({harmony_event::kind::text, channel_, std::move(rest), recipient_});
  }
  out.push_back({kind, channel_, {}, recipient_});
}

std::vector<harmony_event> harmony_parser::push(token_id id) {
  std::vector<harmony_event> out;
  if (state_ == state::done) return out;
  if (id == return_ || id == call_) {
    end_message(id == return_ ? harmony_event::kind::done : harmony_event::kind::tool_call, out);
    state_ = state::done;
    return out;
  }
  switch (state_) {
    case state::between:
      header_.clear();
      state_ = state::header;
      if (id == start_) break;
      [[fallthrough]];  // a header without <|start|>: read it anyway
    case state::header:
      if (id == message_) {
        begin_message(out);
      } else {
        // Markers keep their text so that "<|channel|>final" and "<|constrain|>json" can be read back.
        header_ += tok_->token_bytes(id, special_rendering::render);
      }
      break;
    case state::message:
      if (id == end_) {
        end_message(harmony_event::kind::message_end, out);
        state_ = state::between;
      } else if (tok_->type(id) == token_type::normal || tok_->type(id) == token_type::user_defined) {
        if (std::string t = decoder_.push(id); !t.empty()) {
          out.push_back({harmony_event::kind::text, channel_, std::move(t), recipient_});
        }
      }
      // Any other control token inside a message (<|start|>, <|channel|>, reserved) is not text: dropped.
      break;
    case state::done:
      break;
  }
  return out;
}

std::vector<harmony_event> harmony_parser::finish() {
  std::vector<harmony_event> out;
  if (state_ == state::message) {
    if (std::string rest = decoder_.flush(); !rest.empty()) {
      out.push_back({harmony_event::kind::text, channel_, std::move(rest), recipient_});
    }
  }
  state_ = state::done;
  return out;
}

}  // namespace worker::model
