// `worker-orcd tokenize --model FILE [--special] [--json] [--batch] [--bench]`: UTF-8 text on stdin ->
// token ids, with the model's own tokenizer read from its GGUF metadata. --batch turns one process into a
// JSON-lines service (one request per line) so that tests tokenize thousands of strings without spawning a
// process per string; --bench measures encode and streaming-decode throughput on the input text.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "model/gguf.hpp"
#include "model/tokenizer/stream_decoder.hpp"
#include "model/tokenizer/tokenizer.hpp"
#include "tools/cli_options.hpp"
#include "tools/commands.hpp"

namespace worker::tools {
namespace {

constexpr const char* k_usage =
    "usage: worker-orcd tokenize --model FILE [--special] [--json] [--batch] [--bench]\n"
    "  reads UTF-8 text on stdin and prints its token ids (space-separated)\n"
    "  --model FILE  GGUF model whose tokenizer to use\n"
    "  --special     special-token text in the input (e.g. <|im_start|>) becomes its control token;\n"
    "                by default it is tokenized as ordinary characters\n"
    "  --json        print a JSON array\n"
    "  --batch       stdin is JSON lines, each a JSON string or {\"text\": \"...\", \"special\": true};\n"
    "                prints one JSON array per line, or {\"error\": \"...\"} for a line that cannot be tokenized\n"
    "  --bench       time encoding and streaming decoding of the input; prints one JSON object\n"
    "invalid UTF-8 input is an error that names the byte offset (exit code 1)\n";

using clock_type = std::chrono::steady_clock;

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

std::string read_stdin() {
  std::ios::sync_with_stdio(false);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

int run_batch(const model::tokenizer& tok, bool special_default) {
  std::ios::sync_with_stdio(false);
  std::string line;
  while (std::getline(std::cin, line)) {
    nlohmann::json reply;
    try {
      const nlohmann::json req = nlohmann::json::parse(line);
      bool special = special_default;
      std::string text;
      if (req.is_string()) {
        text = req.get<std::string>();
      } else {
        text = req.at("text").get<std::string>();
        special = req.value("special", special_default);
      }
      reply = tok.encode(text, special ? model::special_tokens::parse : model::special_tokens::plain);
    } catch (const model::utf8_error& e) {
      reply = {{"error", e.what()}, {"offset", e.offset()}};
    } catch (const nlohmann::json::exception& e) {
      reply = {{"error", std::string("bad request line: ") + e.what()}};
    }
    std::cout << reply.dump() << '\n';
    std::cout.flush();  // a driver may wait for each reply before sending the next line
  }
  return 0;
}

int run_bench(const model::tokenizer& tok, const std::string& text, model::special_tokens mode, double load_ms,
              double load_cpu_ms) {
  // Best of several repetitions: the machine may be shared, and the best run is the tokenizer's own speed.
  std::vector<model::token_id> ids;
  double best_encode = 1e300;
  const auto bench_start = clock_type::now();
  for (int rep = 0; rep < 50 && (rep < 3 || ms_since(bench_start) < 2000.0); ++rep) {
    const auto t0 = clock_type::now();
    ids = tok.encode(text, mode);
    best_encode = std::min(best_encode, ms_since(t0));
  }
  double best_decode = 1e300;
  std::size_t decoded_bytes = 0;
  const auto decode_start = clock_type::now();
  for (int rep = 0; rep < 50 && (rep < 3 || ms_since(decode_start) < 2000.0); ++rep) {
    const auto t0 = clock_type::now();
    model::stream_decoder dec(tok);
    std::size_t n = 0;
    for (model::token_id id : ids) n += dec.push(id).size();
    n += dec.flush().size();
    best_decode = std::min(best_decode, ms_since(t0));
    decoded_bytes = n;
  }
  double best_bulk = 1e300;
  const auto bulk_start = clock_type::now();
  for (int rep = 0; rep < 50 && (rep < 3 || ms_since(bulk_start) < 1000.0); ++rep) {
    const auto t0 = clock_type::now();
    const std::string all = tok.decode(ids);
    best_bulk = std::min(best_bulk, ms_since(t0));
    if (all.size() != decoded_bytes) throw std::logic_error("bulk and streamed decode disagree");
  }
  const nlohmann::json out = {
      {"bytes", text.size()},
      {"tokens", ids.size()},
      {"load_ms", load_ms},
      {"load_cpu_ms", load_cpu_ms},
      {"encode_ms", best_encode},
      {"encode_mb_per_s", static_cast<double>(text.size()) / 1e6 / (best_encode / 1e3)},
      {"decode_ms", best_decode},
      {"decode_tokens_per_s", static_cast<double>(ids.size()) / (best_decode / 1e3)},
      {"decode_bulk_tokens_per_s", static_cast<double>(ids.size()) / (best_bulk / 1e3)},
      {"decoded_bytes", decoded_bytes},
  };
  std::cout << out.dump() << '\n';
  return 0;
}

}  // namespace

int cmd_tokenize(command_args args) {
  std::string model_path;
  bool special = false, json = false, batch = false, bench = false;
  const cli_spec spec{"tokenize", k_usage, {{"--model", &model_path}},
                      {{"--special", &special}, {"--json", &json}, {"--batch", &batch}, {"--bench", &bench}},
                      {"--model"}};
  if (const auto exit_code = parse_cli(args, spec)) return *exit_code;

  const auto t0 = clock_type::now();
  const std::clock_t c0 = std::clock();
  const model::gguf_file file = model::gguf_file::open(model_path);
  const model::tokenizer tok = model::tokenizer_from_gguf(file);
  const double load_ms = ms_since(t0);
  // CPU time as well: on a shared machine the wall time says more about the neighbours than about us.
  const double load_cpu_ms = 1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  const auto mode = special ? model::special_tokens::parse : model::special_tokens::plain;

  if (batch) return run_batch(tok, special);
  const std::string text = read_stdin();
  if (bench) return run_bench(tok, text, mode, load_ms, load_cpu_ms);

  const auto ids = tok.encode(text, mode);  // utf8_error reaches main: "error: invalid UTF-8 at byte N"
  if (json) {
    std::cout << nlohmann::json(ids).dump() << '\n';
  } else {
    for (std::size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << '\n';
  }
  return 0;
}

}  // namespace worker::tools
