// `worker-orcd detokenize --model FILE [--special] [--json]`: token ids on stdin (separated by spaces,
// commas or newlines, or one JSON array) -> text. Output is always valid UTF-8: bytes of an incomplete or
// invalid sequence (ids that cut a character) are written as U+FFFD, exactly as the streaming decoder does.
#include <cctype>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/gguf.hpp"
#include "model/tokenizer/stream_decoder.hpp"
#include "model/tokenizer/tokenizer.hpp"
#include "tools/cli_options.hpp"
#include "tools/commands.hpp"

namespace worker::tools {
namespace {

constexpr const char* k_usage =
    "usage: worker-orcd detokenize --model FILE [--special] [--json]\n"
    "  reads token ids on stdin (separated by spaces, commas or newlines, or a JSON array) and prints the text\n"
    "  --model FILE  GGUF model whose tokenizer to use\n"
    "  --special     render control tokens as their text (e.g. <|im_end|>); by default they print nothing\n"
    "  --json        print the text as a JSON string\n";

// Parses ids; throws std::invalid_argument naming the offending input.
std::vector<model::token_id> parse_ids(const std::string& input) {
  std::vector<model::token_id> ids;
  std::size_t i = 0;
  while (i < input.size()) {
    const unsigned char c = static_cast<unsigned char>(input[i]);
    if (std::isspace(c) || c == ',' || c == '[' || c == ']') {
      ++i;
      continue;
    }
    if (!std::isdigit(c)) throw std::invalid_argument("not a token id at input byte " + std::to_string(i));
    std::uint64_t v = 0;
    while (i < input.size() && std::isdigit(static_cast<unsigned char>(input[i]))) {
      v = v * 10 + static_cast<std::uint64_t>(input[i] - '0');
      if (v > 0xFFFFFFFFull) throw std::invalid_argument("token id too large at input byte " + std::to_string(i));
      ++i;
    }
    ids.push_back(static_cast<model::token_id>(v));
  }
  return ids;
}

}  // namespace

int cmd_detokenize(command_args args) {
  std::string model_path;
  bool special = false, json = false;
  const cli_spec spec{"detokenize", k_usage, {{"--model", &model_path}}, {{"--special", &special}, {"--json", &json}},
                      {"--model"}};
  if (const auto exit_code = parse_cli(args, spec)) return *exit_code;
  const model::gguf_file file = model::gguf_file::open(model_path);
  const model::tokenizer tok = model::tokenizer_from_gguf(file);

  std::ios::sync_with_stdio(false);
  const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  const auto ids = parse_ids(input);
  model::stream_decoder dec(tok, special ? model::special_rendering::render : model::special_rendering::skip);
  std::string text;
  for (model::token_id id : ids) text += dec.push(id);  // tokenizer_error for an id outside the vocabulary
  text += dec.flush();
  if (json) {
    std::cout << nlohmann::json(text).dump() << '\n';
  } else {
    std::cout << text;
  }
  return 0;
}

}  // namespace worker::tools
