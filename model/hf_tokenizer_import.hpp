// Imports a Hugging Face byte-level BPE tokenizer (tokenizer.json, plus tokenizer_config.json and
// chat_template.jinja when they sit beside it) into the GGUF tokenizer definition (tokenizer_vocab,
// model-facts.md §1.6), laid out the way llama.cpp's converter lays it out:
//   - model.vocab entries keep their ids and their byte-level-encoded text, type NORMAL;
//   - added tokens keep their ids and raw text; CONTROL when HF marks them special or they look special
//     (`<|...|>`, which the converter treats as control even when HF says special:false), else
//     USER_DEFINED (e.g. Qwen's <tool_call>);
//   - ids with no token (holes, and everything from the last token up to the embedding row count) become
//     `[PAD{id}]` entries of type UNUSED;
//   - merges become "A B" strings whether the JSON stores them as strings or as [A, B] pairs.
// Used by the synthetic model generator; never by the product at run time (it reads GGUF metadata).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include "model/tokenizer_vocab.hpp"

namespace worker::model {

class hf_import_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct hf_tokenizer_import_options {
  std::string pre;                         // tokenizer.ggml.pre to record ("qwen2", "gpt-4o")
  std::optional<std::uint32_t> last_id;    // drop tokens with a larger id (see the Qwen note in synth presets)
  std::uint32_t padded_size = 0;           // pad with [PAD{id}] UNUSED rows up to this count (0: no padding)
  // Special ids: when unset, taken from tokenizer_config.json's bos_token/eos_token/pad_token (by text).
  std::optional<std::uint32_t> bos_id;
  std::optional<std::uint32_t> eos_id;
  std::optional<std::uint32_t> pad_id;
};

// Reads `tokenizer_json` (and its siblings). Throws hf_import_error naming the file and what was wrong
// (unreadable, not BPE, duplicate or out-of-range ids, more tokens than padded_size, unknown special token).
tokenizer_vocab import_hf_tokenizer(const std::filesystem::path& tokenizer_json, const hf_tokenizer_import_options& options);

}  // namespace worker::model
