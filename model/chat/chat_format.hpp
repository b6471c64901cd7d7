// Chat formats: turning a request's messages into prompt token ids (model-facts.md §6.6).
//
//   chatml (Qwen2.5):  <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n
//                      <|im_start|>assistant\n{prefill}
//                      with Qwen's default system prompt when the first message is not a system message.
//   harmony (gpt-oss): <|start|>system<|message|>{identity, knowledge cutoff, current date, reasoning
//                      effort, valid channels}<|end|>[<|start|>developer<|message|># Instructions\n\n{dev}
//                      \n\n<|end|>]<|start|>user<|message|>{user}<|end|>...<|start|>assistant[prefill]
//
// Both follow the models' own Jinja templates (tokenizer.chat_template) character for character; the oracle
// test renders those templates with @huggingface/jinja and compares.
//
// Safety: the template's markers become special tokens by id; message contents are tokenized as plain
// text, so a user who types "<|im_end|>" or "<|channel|>" gets those characters, not the control tokens.
// The current date comes from the request, never the clock, so a prompt is reproducible.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "model/tokenizer/tokenizer.hpp"

namespace worker::model {

enum class chat_format_kind { chatml, harmony };

// The chat format of an architecture (general.architecture), or nullopt when it has none we know.
std::optional<chat_format_kind> chat_format_for_architecture(std::string_view architecture);
std::string_view to_string(chat_format_kind kind);

enum class chat_role { system, developer, user, assistant };
std::optional<chat_role> chat_role_from_string(std::string_view name);

struct chat_message {
  chat_role role;
  std::string content;
};

enum class reasoning_effort { low, medium, high };
std::optional<reasoning_effort> reasoning_effort_from_string(std::string_view name);

struct chat_request {
  // At least one. harmony: system/developer only as the first message (it becomes the developer
  // instructions). chatml: system anywhere (a first system message replaces the default), no developer.
  std::vector<chat_message> messages;
  std::optional<std::string> assistant_prefill;  // start of the assistant's reply, continued by the model
  // harmony only:
  reasoning_effort effort = reasoning_effort::medium;
  std::optional<std::string> current_date;    // "YYYY-MM-DD"; the line is left out when absent
};

enum class chat_error_code {
  no_messages,       // the request has no message
  misplaced_system,  // harmony: a system/developer message that is not the first message
  unsupported_role,  // a role the format cannot express (developer in ChatML)
  bad_date,          // current_date is not YYYY-MM-DD
};

class chat_error : public std::invalid_argument {
 public:
  chat_error(chat_error_code code, const std::string& detail) : std::invalid_argument(detail), code_(code) {}
  chat_error_code code() const { return code_; }

 private:
  chat_error_code code_;
};

// A rendered prompt: the ids to feed the model and the same prompt as text (markers written out), for logs,
// the CLI and comparison with the Jinja template.
struct rendered_prompt {
  std::vector<token_id> ids;
  std::string text;
};

// Throws chat_error for a malformed request and tokenizer_error(missing_token) when the vocabulary lacks a
// marker the format needs.
rendered_prompt chat_render(const tokenizer& tok, chat_format_kind kind, const chat_request& request);

// The text rendering alone (no vocabulary needed).
std::string chat_render_text(chat_format_kind kind, const chat_request& request);

// End-of-generation token ids (model-facts.md §6.5): Qwen {<|endoftext|>, <|im_end|>, <|fim_pad|>,
// <|repo_name|>, <|file_sep|>}; gpt-oss {<|endoftext|>, <|return|>, <|call|>} — not <|end|>, which the
// model emits between its analysis and final messages.
std::vector<token_id> end_of_generation_ids(const tokenizer& tok, chat_format_kind kind);

}  // namespace worker::model
