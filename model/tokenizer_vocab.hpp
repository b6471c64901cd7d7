// The tokenizer definition as GGUF stores it (tokenizer.ggml.* keys, model-facts.md §1.6). Filled either
// from a GGUF file's metadata (tokenizer_vocab_from_gguf) or from a HF tokenizer.json by the importer
// that the synthetic model generator uses; the tokenizer is built from this struct either way.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace worker::model {

class gguf_file;

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class token_type : std::int32_t {
  undefined = 0,
  normal = 1,
  unknown = 2,
  control = 3,
  user_defined = 4,
  unused = 5,
  byte = 6,
};

struct tokenizer_vocab {
  std::string model;                     // tokenizer.ggml.model, "gpt2" = byte-level BPE
  std::string pre;                       // tokenizer.ggml.pre: "qwen2" | "gpt-4o"
  std::vector<std::string> tokens;       // id -> token text (byte-level-encoded for normal tokens)
  std::vector<token_type> token_types;   // id -> type, same length as tokens
  std::vector<std::string> merges;       // rank -> "A B"
  std::optional<std::uint32_t> bos_id;
  std::optional<std::uint32_t> eos_id;
  std::optional<std::uint32_t> pad_id;
  std::optional<bool> add_bos;
  std::optional<std::string> chat_template;  // informational; our chat formats are built in
};

// Reads the tokenizer.ggml.* keys. Throws gguf_error (missing_key / metadata_type) when incomplete.
tokenizer_vocab tokenizer_vocab_from_gguf(const gguf_file& file);

}  // namespace worker::model
