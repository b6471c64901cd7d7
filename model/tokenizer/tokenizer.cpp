// The byte-level BPE tokenizer. See tokenizer.hpp for the pipeline.
#include "model/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <array>
#include <unordered_map>

#include "model/tokenizer/byte_level.hpp"
#include "model/tokenizer/unicode_class.hpp"

namespace worker::model {

std::string_view to_string(tokenizer_error_code code) {
  switch (code) {
    case tokenizer_error_code::unsupported_model: return "unsupported tokenizer model";
    case tokenizer_error_code::unsupported_pre: return "unsupported pre-tokenizer";
    case tokenizer_error_code::bad_vocab: return "bad vocabulary";
    case tokenizer_error_code::bad_merge: return "bad merge";
    case tokenizer_error_code::bad_token_id: return "bad token id";
    case tokenizer_error_code::missing_token: return "missing token";
  }
  return "tokenizer error";
}

namespace {

// Control, user-defined and unknown tokens are the ones whose text can be written in a prompt; unused
// (padding) and byte tokens never match text.
bool is_special_kind(token_type t) {
  return t == token_type::control || t == token_type::user_defined || t == token_type::unknown;
}

}  // namespace

// Leftmost-longest matcher over the special tokens' texts (a byte trie, as HF's AddedVocabulary does
// with Aho-Corasick LeftmostLongest): at each position the longest token text starting there wins.
struct tokenizer::special_matcher {
  struct node {
    std::vector<std::pair<unsigned char, std::uint32_t>> children;
    token_id terminal = ~token_id{0};
  };
  std::vector<node> nodes{node{}};
  std::array<bool, 256> first_byte{};
  std::unordered_map<std::string, token_id> by_text;

  void add(std::string_view text, token_id id) {
    if (text.empty() || !by_text.emplace(std::string(text), id).second) return;  // first id wins
    std::uint32_t at = 0;
    for (unsigned char c : text) {
      auto& ch = nodes[at].children;
      auto it = std::find_if(ch.begin(), ch.end(), [c](const auto& p) { return p.first == c; });
      if (it == ch.end()) {
        nodes.push_back(node{});
        nodes[at].children.emplace_back(c, static_cast<std::uint32_t>(nodes.size() - 1));
        at = static_cast<std::uint32_t>(nodes.size() - 1);
      } else {
        at = it->second;
      }
    }
    nodes[at].terminal = id;
    first_byte[static_cast<unsigned char>(text[0])] = true;
  }

  // Length and id of the longest token text at text[pos], or length 0.
  std::pair<std::size_t, token_id> match(std::string_view text, std::size_t pos) const {
    std::size_t best_len = 0;
    token_id best = 0;
    std::uint32_t at = 0;
    for (std::size_t i = pos; i < text.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      const auto& ch = nodes[at].children;
      auto it = std::find_if(ch.begin(), ch.end(), [c](const auto& p) { return p.first == c; });
      if (it == ch.end()) break;
      at = it->second;
      if (nodes[at].terminal != ~token_id{0}) {
        best_len = i - pos + 1;
        best = nodes[at].terminal;
      }
    }
    return {best_len, best};
  }
};

tokenizer::tokenizer(const tokenizer_vocab& vocab) : bpe_(vocab), specials_(std::make_unique<special_matcher>()) {
  if (vocab.model != "gpt2") {
    throw tokenizer_error(tokenizer_error_code::unsupported_model,
                          "tokenizer.ggml.model = '" + vocab.model + "' (only 'gpt2' byte-level BPE is supported)");
  }
  pre_ = pre_tokenizer_config_for(vocab.pre);
  if (pre_ == nullptr) {
    throw tokenizer_error(tokenizer_error_code::unsupported_pre,
                          "tokenizer.ggml.pre = '" + vocab.pre + "' (supported: qwen2, gpt-4o)");
  }
  pre_name_ = vocab.pre;
  for (token_id id = 0; id < bpe_.size(); ++id) {
    if (is_special_kind(bpe_.type(id))) specials_->add(bpe_.bytes(id), id);
  }
  auto checked = [&](const std::optional<std::uint32_t>& id, const char* key) -> std::optional<token_id> {
    if (id && *id >= bpe_.size()) {
      throw tokenizer_error(tokenizer_error_code::bad_vocab, std::string(key) + " " + std::to_string(*id) +
                                                                 " is outside the vocabulary");
    }
    return id;
  };
  bos_id_ = checked(vocab.bos_id, "tokenizer.ggml.bos_token_id");
  eos_id_ = checked(vocab.eos_id, "tokenizer.ggml.eos_token_id");
}

tokenizer::~tokenizer() = default;
tokenizer::tokenizer(tokenizer&&) noexcept = default;
tokenizer& tokenizer::operator=(tokenizer&&) noexcept = default;

std::vector<token_id> tokenizer::encode(std::string_view text, special_tokens mode) const {
  std::vector<token_id> out;
  out.reserve(text.size() / 3 + 4);
  encode_append(text, mode, out);
  return out;
}

void tokenizer::encode_append(std::string_view text, special_tokens mode, std::vector<token_id>& out) const {
  utf8_validate(text);
  if (mode == special_tokens::plain) {
    encode_fragment(text, out);
    return;
  }
  std::size_t fragment_start = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    if (!specials_->first_byte[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const auto [len, id] = specials_->match(text, pos);
    if (len == 0) {
      ++pos;
      continue;
    }
    encode_fragment(text.substr(fragment_start, pos - fragment_start), out);
    out.push_back(id);
    pos += len;
    fragment_start = pos;
  }
  encode_fragment(text.substr(fragment_start), out);
}

void tokenizer::encode_fragment(std::string_view text, std::vector<token_id>& out) const {
  if (text.empty()) return;
  std::string normalized;
  if (pre_->nfc && !unicode_is_nfc(text)) {
    normalized = unicode_nfc(text);
    text = normalized;
  }
  thread_local std::vector<std::uint32_t> offsets;
  thread_local std::vector<cp_flags> flags;
  thread_local std::vector<cp_range> pieces;
  const std::vector<char32_t> cps = utf8_decode(text, &offsets);
  flags.resize(cps.size());
  for (std::size_t i = 0; i < cps.size(); ++i) flags[i] = unicode_flags(cps[i]);
  pieces.clear();
  pre_tokenize(pre_->kind, cps, flags, pieces);
  for (const cp_range& r : pieces) {
    bpe_.encode_piece(text.substr(offsets[r.begin], offsets[r.end] - offsets[r.begin]), pre_->ignore_merges, out);
  }
}

std::string_view tokenizer::token_bytes(token_id id, special_rendering mode) const {
  if (id >= bpe_.size()) {
    throw tokenizer_error(tokenizer_error_code::bad_token_id,
                          std::to_string(id) + " (vocabulary size " + std::to_string(bpe_.size()) + ")");
  }
  switch (bpe_.type(id)) {
    case token_type::normal:
    case token_type::user_defined:  // printed verbatim, as llama.cpp and HF do
      return bpe_.bytes(id);
    default:  // control, unknown, unused, byte, undefined
      return mode == special_rendering::render ? bpe_.bytes(id) : std::string_view{};
  }
}

std::string tokenizer::decode(std::span<const token_id> ids, special_rendering mode) const {
  std::string out;
  for (token_id id : ids) out += token_bytes(id, mode);
  return out;
}

std::string tokenizer::token_text(token_id id) const {
  if (id >= bpe_.size()) throw tokenizer_error(tokenizer_error_code::bad_token_id, std::to_string(id));
  return bpe_.type(id) == token_type::normal ? byte_level_encode(bpe_.bytes(id)) : std::string(bpe_.bytes(id));
}

std::optional<token_id> tokenizer::find_special(std::string_view text) const {
  auto it = specials_->by_text.find(std::string(text));
  if (it == specials_->by_text.end()) return std::nullopt;
  return it->second;
}

token_id tokenizer::require_special(std::string_view text) const {
  if (auto id = find_special(text)) return *id;
  throw tokenizer_error(tokenizer_error_code::missing_token, "'" + std::string(text) + "' is not a special token");
}

}  // namespace worker::model
