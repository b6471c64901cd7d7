// tokenizer_vocab_from_gguf: reads the tokenizer.ggml.* keys (model-facts.md §1.6) into a tokenizer_vocab
// (declared in model/tokenizer_vocab.hpp), and tokenizer_from_gguf (tokenizer.hpp). Type and presence are
// checked here; the tokenizer checks the contents (byte-level text, merges over known tokens).
#include <string>
#include <variant>

#include "model/gguf.hpp"
#include "model/tokenizer/tokenizer.hpp"
#include "model/tokenizer_vocab.hpp"

namespace worker::model {

namespace {

const gguf_kv& require_kv(const gguf_file& file, std::string_view key) {
  const gguf_kv* kv = file.find(key);
  if (kv == nullptr) throw gguf_error(gguf_error_code::missing_key, std::string(key), 0, "required by the tokenizer");
  return *kv;
}

const gguf_array& require_array(const gguf_file& file, std::string_view key, gguf_value_type elem) {
  const gguf_kv& kv = require_kv(file, key);
  const gguf_array* arr = file.get_array(key);  // throws metadata_type when not an array
  if (arr->elem_type != elem) {
    throw gguf_error(gguf_error_code::metadata_type, std::string(key), kv.offset,
                     "array of " + std::string(to_string(arr->elem_type)) + ", expected array of " +
                         std::string(to_string(elem)));
  }
  return *arr;
}

std::vector<std::string> strings_of(const gguf_array& arr) {
  std::vector<std::string> out;
  out.reserve(arr.items.size());
  for (const gguf_scalar& item : arr.items) out.emplace_back(std::get<std::string_view>(item));
  return out;
}

std::optional<std::uint32_t> optional_id(const gguf_file& file, std::string_view key) {
  const auto v = file.get_uint(key);
  if (!v) return std::nullopt;
  if (*v > 0xFFFFFFFFull) {
    throw gguf_error(gguf_error_code::metadata_type, std::string(key), file.find(key)->offset, "token id out of range");
  }
  return static_cast<std::uint32_t>(*v);
}

}  // namespace

tokenizer_vocab tokenizer_vocab_from_gguf(const gguf_file& file) {
  tokenizer_vocab v;
  const auto model = file.get_string("tokenizer.ggml.model");
  if (!model) throw gguf_error(gguf_error_code::missing_key, "tokenizer.ggml.model", 0, "required by the tokenizer");
  v.model = std::string(*model);
  // llama.cpp treats a missing pre as "default"; we support only named pre-tokenizers, and the tokenizer
  // rejects an empty one with a message that names the key.
  v.pre = std::string(file.get_string("tokenizer.ggml.pre").value_or(""));

  const gguf_array& tokens = require_array(file, "tokenizer.ggml.tokens", gguf_value_type::string);
  v.tokens = strings_of(tokens);

  const gguf_kv& types_kv = require_kv(file, "tokenizer.ggml.token_type");
  const gguf_array* types = file.get_array("tokenizer.ggml.token_type");
  if (types->items.size() != tokens.items.size()) {
    throw gguf_error(gguf_error_code::metadata_type, "tokenizer.ggml.token_type", types_kv.offset,
                     std::to_string(types->items.size()) + " entries for " + std::to_string(tokens.items.size()) +
                         " tokens");
  }
  v.token_types.reserve(types->items.size());
  for (const gguf_scalar& item : types->items) {
    std::int64_t t = -1;
    if (const auto* i = std::get_if<std::int64_t>(&item)) t = *i;
    if (const auto* u = std::get_if<std::uint64_t>(&item)) t = static_cast<std::int64_t>(*u);
    if (t < 0 || t > static_cast<std::int64_t>(token_type::byte)) {
      throw gguf_error(gguf_error_code::metadata_type, "tokenizer.ggml.token_type", types_kv.offset,
                       "token type " + std::to_string(t) + " is not 0..6");
    }
    v.token_types.push_back(static_cast<token_type>(t));
  }

  // A byte-level BPE without merges is legal (every token a single byte), so merges may be absent.
  if (file.find("tokenizer.ggml.merges")) {
    v.merges = strings_of(require_array(file, "tokenizer.ggml.merges", gguf_value_type::string));
  }
  v.bos_id = optional_id(file, "tokenizer.ggml.bos_token_id");
  v.eos_id = optional_id(file, "tokenizer.ggml.eos_token_id");
  v.pad_id = optional_id(file, "tokenizer.ggml.padding_token_id");
  v.add_bos = file.get_bool("tokenizer.ggml.add_bos_token");
  if (auto tmpl = file.get_string("tokenizer.chat_template")) v.chat_template = std::string(*tmpl);
  return v;
}

tokenizer tokenizer_from_gguf(const gguf_file& file) { return tokenizer(tokenizer_vocab_from_gguf(file)); }

}  // namespace worker::model
