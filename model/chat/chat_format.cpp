// ChatML (Qwen2.5) and harmony (gpt-oss) prompt rendering. See chat_format.hpp.
#include "model/chat/chat_format.hpp"

#include <array>
#include <cctype>

namespace worker::model {

namespace {

// A prompt as a sequence of parts: markers (special tokens, looked up by text) and content (plain text).
// Adjacent content parts are tokenized together, exactly as the reference tokenizes the rendered template
// string between two special tokens.
class prompt_builder {
 public:
  void marker(std::string_view text) { parts_.push_back({true, std::string(text)}); }
  void content(std::string_view text) {
    if (!parts_.empty() && !parts_.back().is_marker) {
      parts_.back().text += text;
    } else {
      parts_.push_back({false, std::string(text)});
    }
  }

  std::string text() const {
    std::string out;
    for (const auto& p : parts_) out += p.text;
    return out;
  }

  std::vector<token_id> ids(const tokenizer& tok) const {
    std::vector<token_id> out;
    for (const auto& p : parts_) {
      if (p.is_marker) {
        out.push_back(tok.require_special(p.text));
      } else {
        tok.encode_append(p.text, special_tokens::plain, out);
      }
    }
    return out;
  }

 private:
  struct part {
    bool is_marker;
    std::string text;
  };
  std::vector<part> parts_;
};

constexpr std::string_view k_qwen_default_system = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

std::string_view role_name(chat_role r) {
  switch (r) {
    case chat_role::system: return "system";
    case chat_role::developer: return "developer";
    case chat_role::user: return "user";
    case chat_role::assistant: return "assistant";
  }
  return "user";
}

std::string_view effort_name(reasoning_effort e) {
  switch (e) {
    case reasoning_effort::low: return "low";
    case reasoning_effort::medium: return "medium";
    case reasoning_effort::high: return "high";
  }
  return "medium";
}

void check_date(const std::string& d) {
  // YYYY-MM-DD with a real month and a day that month can have (leap years included).
  auto digits = [&](std::size_t a, std::size_t n) {
    for (std::size_t i = a; i < a + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(d[i]))) return false;
    }
    return true;
  };
  const bool shape = d.size() == 10 && digits(0, 4) && d[4] == '-' && digits(5, 2) && d[7] == '-' && digits(8, 2);
  if (shape) {
    const int y = std::stoi(d.substr(0, 4)), m = std::stoi(d.substr(5, 2)), day = std::stoi(d.substr(8, 2));
    static constexpr std::array<int, 12> k_days{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m >= 1 && m <= 12 && day >= 1 && day <= (m == 2 && !leap ? 28 : k_days[m - 1])) return;
  }
  throw chat_error(chat_error_code::bad_date, "current_date '" + d + "' is not a valid YYYY-MM-DD date");
}

void build_chatml(const chat_request& req, prompt_builder& b) {
  // A first system message replaces the default; later system messages are rendered in place (as the
  // Qwen2.5 template does).
  const bool has_system = req.messages.front().role == chat_role::system;
  if (!has_system) {
    b.marker("<|im_start|>");
    b.content("system\n");
    b.content(k_qwen_default_system);
    b.marker("<|im_end|>");
    b.content("\n");
  }
  for (const auto& m : req.messages) {
    if (m.role == chat_role::developer) {
      throw chat_error(chat_error_code::unsupported_role, "ChatML has no developer role (use system)");
    }
    b.marker("<|im_start|>");
    b.content(role_name(m.role));
    b.content("\n");
    b.content(m.content);
    b.marker("<|im_end|>");
    b.content("\n");
  }
  b.marker("<|im_start|>");
  b.content("assistant\n");
  if (req.assistant_prefill) b.content(*req.assistant_prefill);
}

void build_harmony(const chat_request& req, prompt_builder& b) {
  b.marker("<|start|>");
  b.content("system");
  b.marker("<|message|>");
  b.content("You are ChatGPT, a large language model trained by OpenAI.\nKnowledge cutoff: 2024-06\n");
  if (req.current_date) {
    check_date(*req.current_date);
    b.content("Current date: " + *req.current_date + "\n");
  }
  b.content("\nReasoning: ");
  b.content(effort_name(req.effort));
  b.content("\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.");
  b.marker("<|end|>");

  std::size_t first = 0;
  const chat_role r0 = req.messages.front().role;
  if (r0 == chat_role::system || r0 == chat_role::developer) {
    first = 1;
    // The template writes the developer block only for non-empty instructions.
    if (!req.messages.front().content.empty()) {
      b.marker("<|start|>");
      b.content("developer");
      b.marker("<|message|>");
      b.content("# Instructions\n\n");
      b.content(req.messages.front().content);
      b.content("\n\n");
      b.marker("<|end|>");
    }
  }
  for (std::size_t i = first; i < req.messages.size(); ++i) {
    const auto& m = req.messages[i];
    b.marker("<|start|>");
    switch (m.role) {
      case chat_role::system:
      case chat_role::developer:
        throw chat_error(chat_error_code::misplaced_system,
                         "harmony takes system/developer instructions only as the first message");
      case chat_role::user:
        b.content("user");
        break;
      case chat_role::assistant:
        // Earlier assistant turns keep only their final answer; the chain of thought is dropped.
        b.content("assistant");
        b.marker("<|channel|>");
        b.content("final");
        break;
    }
    b.marker("<|message|>");
    b.content(m.content);
    b.marker("<|end|>");
  }
  b.marker("<|start|>");
  b.content("assistant");
  if (req.assistant_prefill) {
    // A prefill is the start of the final answer: the analysis channel is skipped.
    b.marker("<|channel|>");
    b.content("final");
    b.marker("<|message|>");
    b.content(*req.assistant_prefill);
  }
}

prompt_builder build(chat_format_kind kind, const chat_request& req) {
  if (req.messages.empty()) throw chat_error(chat_error_code::no_messages, "a chat request needs at least one message");
  prompt_builder b;
  if (kind == chat_format_kind::chatml) {
    build_chatml(req, b);
  } else {
    build_harmony(req, b);
  }
  return b;
}

}  // namespace

std::optional<chat_format_kind> chat_format_for_architecture(std::string_view architecture) {
  if (architecture == "qwen2") return chat_format_kind::chatml;
  if (architecture == "gpt-oss") return chat_format_kind::harmony;
  return std::nullopt;
}

std::string_view to_string(chat_format_kind kind) { return kind == chat_format_kind::chatml ? "chatml" : "harmony"; }

std::optional<chat_role> chat_role_from_string(std::string_view name) {
  for (chat_role r : {chat_role::system, chat_role::developer, chat_role::user, chat_role::assistant}) {
    if (role_name(r) == name) return r;
  }
  return std::nullopt;
}

std::optional<reasoning_effort> reasoning_effort_from_string(std::string_view name) {
  for (reasoning_effort e : {reasoning_effort::low, reasoning_effort::medium, reasoning_effort::high}) {
    if (effort_name(e) == name) return e;
  }
  return std::nullopt;
}

rendered_prompt chat_render(const tokenizer& tok, chat_format_kind kind, const chat_request& request) {
  const prompt_builder b = build(kind, request);
  return rendered_prompt{b.ids(tok), b.text()};
}

std::string chat_render_text(chat_format_kind kind, const chat_request& request) { return build(kind, request).text(); }

std::vector<token_id> end_of_generation_ids(const tokenizer& tok, chat_format_kind kind) {
  static constexpr std::array<std::string_view, 5> k_chatml{"<|endoftext|>", "<|im_end|>", "<|fim_pad|>", "<|repo_name|>",
                                                            "<|file_sep|>"};
  static constexpr std::array<std::string_view, 3> k_harmony{"<|endoftext|>", "<|return|>", "<|call|>"};
  std::vector<token_id> ids;
  if (kind == chat_format_kind::chatml) {
    for (auto t : k_chatml) ids.push_back(tok.require_special(t));
  } else {
    for (auto t : k_harmony) ids.push_back(tok.require_special(t));
  }
  return ids;
}

}  // namespace worker::model
