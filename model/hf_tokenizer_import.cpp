// HF tokenizer.json -> tokenizer_vocab (see hf_tokenizer_import.hpp for the layout rules and why).
#include "model/hf_tokenizer_import.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>
#include <vector>

namespace worker::model {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::filesystem::path& file, const std::string& what) {
  throw hf_import_error("tokenizer import: " + file.string() + ": " + what);
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse_json(const std::filesystem::path& path) {
  try {
    return json::parse(read_text(path));
  } catch (const json::exception& e) {
    fail(path, std::string("invalid JSON: ") + e.what());
  }
}

// The converter's rule for added tokens HF marks special:false (conversion/base.py does_token_look_special):
// ChatML/FIM-style `<|...|>` texts are control tokens anyway.
bool looks_special(const std::string& text) {
  return text.size() >= 4 && text.starts_with("<|") && text.ends_with("|>");
}

// tokenizer_config.json stores special tokens as a plain string or as {"content": "..."}; null = none.
std::optional<std::string> special_text(const json& cfg, const char* key) {
  if (!cfg.contains(key)) return std::nullopt;
  const auto& v = cfg.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return std::nullopt;
}

// chat_template is a string, or a list of {name, template} of which "default" is the one to use.
std::optional<std::string> chat_template_of(const json& cfg) {
  if (!cfg.contains("chat_template")) return std::nullopt;
  const auto& v = cfg.at("chat_template");
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    for (const auto& e : v) {
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e.at("template").is_string()) {
        return e.at("template").get<std::string>();
      }
    }
  }
  return std::nullopt;
}

}  // namespace

tokenizer_vocab import_hf_tokenizer(const std::filesystem::path& tokenizer_json, const hf_tokenizer_import_options& options) {
  const json tok = parse_json(tokenizer_json);
  if (!tok.contains("model") || !tok.at("model").is_object()) fail(tokenizer_json, "no \"model\" object");
  const json& model = tok.at("model");
  if (model.value("type", "") != "BPE") fail(tokenizer_json, "model.type is not \"BPE\" (only byte-level BPE is supported)");
  if (!model.contains("vocab") || !model.at("vocab").is_object()) fail(tokenizer_json, "model.vocab is not an object");
  if (!model.contains("merges") || !model.at("merges").is_array()) fail(tokenizer_json, "model.merges is not an array");

  const std::uint64_t limit = options.last_id ? std::uint64_t{*options.last_id} + 1 : std::uint64_t{1} << 31;
  struct slot {
    std::string text;
    token_type type = token_type::undefined;
  };
  std::vector<slot> slots;
  std::unordered_map<std::string, std::uint32_t> id_of_text;  // for resolving tokenizer_config names
  // No real vocabulary comes near 2^24 ids; a larger one is a corrupt file, not a reason to allocate GiBs.
  constexpr std::uint64_t k_max_id = std::uint64_t{1} << 24;
  auto place = [&](std::uint64_t id, std::string text, token_type type) {
    if (id >= k_max_id) fail(tokenizer_json, "token '" + text + "' has the implausible id " + std::to_string(id));
    if (id >= limit) return;  // left out on purpose (options.last_id)
    if (id >= slots.size()) slots.resize(id + 1);
    if (slots[id].type != token_type::undefined) {
      fail(tokenizer_json, "id " + std::to_string(id) + " used by both '" + slots[id].text + "' and '" + text + "'");
    }
    id_of_text.emplace(text, static_cast<std::uint32_t>(id));
    slots[id] = {std::move(text), type};
  };

  for (const auto& [text, id] : model.at("vocab").items()) {
    if (!id.is_number_unsigned()) fail(tokenizer_json, "model.vocab['" + text + "'] is not a non-negative integer");
    place(id.get<std::uint64_t>(), text, token_type::normal);
  }
  if (tok.contains("added_tokens") && tok.at("added_tokens").is_array()) {
    for (const auto& a : tok.at("added_tokens")) {
      if (!a.contains("id") || !a.at("id").is_number_unsigned() || !a.contains("content") || !a.at("content").is_string()) {
        fail(tokenizer_json, "an added_tokens entry lacks an integer id or a string content");
      }
      const auto id = a.at("id").get<std::uint64_t>();
      const auto text = a.at("content").get<std::string>();
      // An added token that repeats a vocab entry at the same id is not new (some tokenizers list both).
      if (id < slots.size() && slots[id].type == token_type::normal && slots[id].text == text) continue;
      const bool special = a.value("special", false) || looks_special(text);
      place(id, text, special ? token_type::control : token_type::user_defined);
    }
  }

  tokenizer_vocab v;
  v.model = "gpt2";  // byte-level BPE, as llama.cpp names it
  v.pre = options.pre;
  const std::size_t rows = std::max<std::size_t>(slots.size(), options.padded_size);
  if (options.padded_size != 0 && slots.size() > options.padded_size) {
    fail(tokenizer_json, std::to_string(slots.size()) + " tokens do not fit in " + std::to_string(options.padded_size) + " rows");
  }
  v.tokens.reserve(rows);
  v.token_types.reserve(rows);
  for (std::size_t id = 0; id < rows; ++id) {
    if (id < slots.size() && slots[id].type != token_type::undefined) {
      v.tokens.push_back(std::move(slots[id].text));
      v.token_types.push_back(slots[id].type);
    } else {
      v.tokens.push_back("[PAD" + std::to_string(id) + "]");
      v.token_types.push_back(token_type::unused);
    }
  }

  const auto& merges = model.at("merges");
  v.merges.reserve(merges.size());
  for (const auto& m : merges) {
    if (m.is_string()) {
      v.merges.push_back(m.get<std::string>());
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    } else {
      fail(tokenizer_json, "merge #" + std::to_string(v.merges.size()) + " is neither \"A B\" nor [\"A\", \"B\"]");
    }
  }

  // tokenizer_config.json (optional): special token names, add_bos_token, chat template.
  const auto dir = tokenizer_json.parent_path();
  json cfg = json::object();
  if (std::filesystem::exists(dir / "tokenizer_config.json")) cfg = parse_json(dir / "tokenizer_config.json");
  auto resolve = [&](const std::optional<std::uint32_t>& forced, const char* key) -> std::optional<std::uint32_t> {
    if (forced) {
      if (*forced >= v.tokens.size()) fail(tokenizer_json, std::string(key) + " id " + std::to_string(*forced) + " is out of range");
      return forced;
    }
    const auto text = special_text(cfg, key);
    if (!text) return std::nullopt;
    const auto it = id_of_text.find(*text);
    if (it == id_of_text.end()) fail(dir / "tokenizer_config.json", std::string(key) + " '" + *text + "' is not a token");
    return it->second;
  };
  v.bos_id = resolve(options.bos_id, "bos_token");
  v.eos_id = resolve(options.eos_id, "eos_token");
  v.pad_id = resolve(options.pad_id, "pad_token");
  if (cfg.contains("add_bos_token") && cfg.at("add_bos_token").is_boolean()) v.add_bos = cfg.at("add_bos_token").get<bool>();
  v.chat_template = chat_template_of(cfg);
  if (!v.chat_template && std::filesystem::exists(dir / "chat_template.jinja")) v.chat_template = read_text(dir / "chat_template.jinja");
  return v;
}

}  // namespace worker::model
