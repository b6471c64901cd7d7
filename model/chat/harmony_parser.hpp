// Parser for gpt-oss output in the harmony format, fed one generated token at a time. It separates the
// channels so that clients can show or hide the reasoning:
//
//   <|channel|>analysis<|message|>...thinking...<|end|><|start|>assistant<|channel|>final<|message|>...answer...<|return|>
//
// Header tokens (<|channel|>, the channel name, " to=functions.x", <|constrain|>json) are never text;
// message contents come out as UTF-8-safe text deltas tagged with their channel. <|return|> and <|call|>
// end the generation; <|end|> only ends a message (model-facts.md §6.5).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "model/tokenizer/stream_decoder.hpp"
#include "model/tokenizer/tokenizer.hpp"

namespace worker::model {

enum class harmony_channel { analysis, commentary, final, other };
std::string_view to_string(harmony_channel channel);

struct harmony_event {
  enum class kind {
    text,         // `text` is the next piece of the current message, in `channel`
    message_end,  // the message in `channel` ended with <|end|>
    done,         // <|return|>: the final answer is complete
    tool_call,    // <|call|>: the message in `channel` (to `recipient`) is a complete tool call
  };
  kind type;
  harmony_channel channel = harmony_channel::other;
  std::string text;
  std::string recipient;  // " to=..." of the header, when present
};

class harmony_parser {
 public:
  // Where generation starts: right after "<|start|>assistant" (the plain generation prompt), or inside a
  // final-channel message (the prompt ended with a prefill "<|channel|>final<|message|>...").
  enum class start { header, final_message };

  // Throws tokenizer_error(missing_token) when the vocabulary lacks the harmony markers.
  explicit harmony_parser(const tokenizer& tok, start at = start::header);

  // Feeds one generated token; returns the events it completes (often none or one text delta).
  std::vector<harmony_event> push(token_id id);
  // End of generation without <|return|>/<|call|> (e.g. max tokens): flushes held text.
  std::vector<harmony_event> finish();

  bool done() const { return state_ == state::done; }
  harmony_channel channel() const { return channel_; }

 private:
  enum class state { header, message, between, done };
  void begin_message(std::vector<harmony_event>& out);
  void end_message(harmony_event::kind kind, std::vector<harmony_event>& out);

  const tokenizer* tok_;
  token_id start_, end_, message_, return_, call_;
  state state_;
  std::string header_;  // header text since <|start|> (role, channel, recipient, constraint)
  harmony_channel channel_ = harmony_channel::other;
  std::string recipient_;
  stream_decoder decoder_;
};

}  // namespace worker::model
