// `worker-orcd generate`: one generation on the chosen device, streaming text to stdout (or one JSON object
// with --json). --prompt is raw text (no template, no BOS); --chat wraps the text as one user message in the
// model's chat format. The seed is generated and reported when absent, so any run can be repeated.
#include <charconv>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/cpu_engine.hpp"
#include "adapters/cuda_engine.hpp"
#include "adapters/generation.hpp"
#include "model/chat/chat_format.hpp"
#include "model/gguf.hpp"
#include "model/tokenizer/stream_decoder.hpp"
#include "model/tokenizer/tokenizer.hpp"
#include "tools/commands.hpp"

namespace worker::tools {
namespace {

constexpr const char* k_usage =
    "usage: worker-orcd generate --model FILE (--prompt TEXT | --chat TEXT) [options]\n"
    "  --model FILE          GGUF model (qwen2 or gpt-oss)\n"
    "  --device DEV          cpu (the reference engine) or cuda[:N] (default cpu)\n"
    "  --prompt TEXT         raw text, tokenized as is (no chat template, no BOS)\n"
    "  --chat TEXT           one user message in the model's chat format (ChatML / harmony)\n"
    "  --system TEXT         system message for --chat\n"
    "  --reasoning EFFORT    harmony reasoning effort: low, medium, high (default low)\n"
    "  -n, --max-tokens N    tokens to generate at most (default 128)\n"
    "  --temperature T       0 = greedy (default 0.8)\n"
    "  --top-k N             0 = off (default 40)\n"
    "  --top-p P             1 = off (default 0.95)\n"
    "  --min-p P             0 = off (default 0.05)\n"
    "  --repeat-penalty R    1 = off (default 1)\n"
    "  --presence-penalty P  0 = off (default 0)\n"
    "  --frequency-penalty F 0 = off (default 0)\n"
    "  --repeat-last-n N     history window of the penalties, 0 = all (default 64)\n"
    "  --seed N              u64 sampling seed (default: random, reported)\n"
    "  --stop TEXT           stop string (repeatable); the model's end-of-generation tokens always stop\n"
    "  --threads N           CPU engine threads (default: all cores)\n"
    "  --ctx N               context limit for this run (default: the model's)\n"
    "  --special             print control tokens (e.g. <|im_end|>) in the output text\n"
    "  --json                print one JSON object: prompt and generated ids, text, stop reason, timing\n";

struct cli_options {
  std::string model;
  std::string device = "cpu";
  std::optional<std::string> prompt;
  std::optional<std::string> chat;
  std::optional<std::string> system;
  model::reasoning_effort effort = model::reasoning_effort::low;
  std::uint32_t max_tokens = 128;
  adapters::sampling_params sampling;
  bool seed_given = false;
  std::vector<std::string> stops;
  unsigned threads = 0;
  std::uint32_t ctx = 0;
  bool special = false;
  bool json = false;
};

template <typename T>
bool parse_number(std::string_view s, T& out) {
  if constexpr (std::is_floating_point_v<T>) {
    try {
      std::size_t used = 0;
      const double v = std::stod(std::string(s), &used);
      if (used != s.size()) return false;
      out = static_cast<T>(v);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  } else {
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size();
  }
}

// Returns nullopt after printing why the arguments are unusable.
std::optional<cli_options> parse_args(command_args args) {
  cli_options o;
  o.sampling.temperature = 0.8f;
  o.sampling.top_k = 40;
  o.sampling.top_p = 0.95f;
  o.sampling.min_p = 0.05f;
  auto fail = [](const std::string& why) -> std::optional<cli_options> {
    std::fprintf(stderr, "worker-orcd generate: %s\n\n%s", why.c_str(), k_usage);
    return std::nullopt;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "--special") { o.special = true; continue; }
    if (a == "--json") { o.json = true; continue; }
    if (i + 1 >= args.size()) return fail(std::string(a) + " needs a value");
    const std::string_view v = args[++i];
    bool ok = true;
    if (a == "--model") o.model = v;
    else if (a == "--device") o.device = v;
    else if (a == "--prompt") o.prompt = std::string(v);
    else if (a == "--chat") o.chat = std::string(v);
    else if (a == "--system") o.system = std::string(v);
    else if (a == "--reasoning") {
      const auto e = model::reasoning_effort_from_string(v);
      ok = e.has_value();
      if (ok) o.effort = *e;
    } else if (a == "-n" || a == "--max-tokens") ok = parse_number(v, o.max_tokens);
    else if (a == "--temperature") ok = parse_number(v, o.sampling.temperature) && o.sampling.temperature >= 0.0f;
    else if (a == "--top-k") ok = parse_number(v, o.sampling.top_k);
    else if (a == "--top-p") ok = parse_number(v, o.sampling.top_p) && o.sampling.top_p > 0.0f && o.sampling.top_p <= 1.0f;
    else if (a == "--min-p") ok = parse_number(v, o.sampling.min_p) && o.sampling.min_p >= 0.0f && o.sampling.min_p <= 1.0f;
    else if (a == "--repeat-penalty") ok = parse_number(v, o.sampling.repetition_penalty) && o.sampling.repetition_penalty > 0.0f;
    else if (a == "--presence-penalty") ok = parse_number(v, o.sampling.presence_penalty);
    else if (a == "--frequency-penalty") ok = parse_number(v, o.sampling.frequency_penalty);
    else if (a == "--repeat-last-n") ok = parse_number(v, o.sampling.penalty_last_n);
    else if (a == "--seed") ok = o.seed_given = parse_number(v, o.sampling.seed);
    else if (a == "--stop") {
      ok = !v.empty();
      o.stops.emplace_back(v);
    } else if (a == "--threads") ok = parse_number(v, o.threads) && o.threads > 0;
    else if (a == "--ctx") ok = parse_number(v, o.ctx) && o.ctx > 0;
    else return fail("unknown option '" + std::string(a) + "'");
    if (!ok) return fail("bad value '" + std::string(v) + "' for " + std::string(a));
  }
  if (o.model.empty()) return fail("--model is required");
  if (o.prompt.has_value() == o.chat.has_value()) return fail("give exactly one of --prompt and --chat");
  if (o.system && !o.chat) return fail("--system needs --chat");
  return o;
}

std::unique_ptr<adapters::engine> open_engine(const cli_options& o) {
  if (o.device == "cpu") {
    adapters::cpu_engine_options eo;
    eo.n_threads = o.threads;
    eo.max_sequences = 1;
    eo.max_context = o.ctx;
    return adapters::open_cpu_engine(o.model, eo);
  }
  if (o.device == "cuda" || o.device.rfind("cuda:", 0) == 0) {
    adapters::cuda_engine_options eo;
    if (o.device.size() > 5 && !parse_number(std::string_view(o.device).substr(5), eo.device)) {
      throw std::invalid_argument("bad device '" + o.device + "'");
    }
    eo.max_sequences = 1;
    if (o.ctx) eo.max_context = o.ctx;
    return adapters::open_cuda_engine(o.model, eo);
  }
  throw std::invalid_argument("unknown device '" + o.device + "' (cpu, cuda[:N])");
}

}  // namespace

int cmd_generate(command_args args) {
  for (const auto a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(k_usage, stdout);
      return 0;
    }
  }
  auto parsed = parse_args(args);
  if (!parsed) return 2;
  cli_options& o = *parsed;
  if (!o.seed_given) o.sampling.seed = (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();

  const auto file = model::gguf_file::open(o.model);
  const model::tokenizer tok = model::tokenizer_from_gguf(file);
  const std::string arch(file.get_string("general.architecture").value_or(""));
  const auto format = model::chat_format_for_architecture(arch);

  adapters::generation_request request;
  if (o.chat) {
    if (!format) throw std::runtime_error("architecture '" + arch + "' has no chat format; use --prompt");
    model::chat_request chat;
    if (o.system) chat.messages.push_back({model::chat_role::system, *o.system});
    chat.messages.push_back({model::chat_role::user, *o.chat});
    chat.effort = o.effort;
    const auto ids = model::chat_render(tok, *format, chat).ids;
    request.prompt.assign(ids.begin(), ids.end());
  } else {
    const auto ids = tok.encode(*o.prompt);
    request.prompt.assign(ids.begin(), ids.end());
  }
  if (request.prompt.empty()) throw std::runtime_error("the prompt has no tokens");
  request.sampling = o.sampling;
  request.max_tokens = o.max_tokens;
  request.stop_strings = o.stops;
  if (format) {
    // model:: ids are unsigned; the engine's are int32 (every vocabulary here is < 2^31).
    const auto eog = model::end_of_generation_ids(tok, *format);
    request.eog_tokens.assign(eog.begin(), eog.end());
  }

  auto engine = open_engine(o);
  const auto mode = o.special ? model::special_rendering::render : model::special_rendering::skip;
  adapters::generation_hooks hooks;
  // The stream decoder turns token bytes into whole, valid UTF-8 code points (a token may end inside
  // one; bytes that can never be valid become U+FFFD), so stdout and the JSON text are valid UTF-8.
  model::stream_decoder decoder(tok, mode);
  hooks.token_text = [&](adapters::token_id id) { return decoder.push(static_cast<model::token_id>(id)); };
  if (!o.json) {
    hooks.on_text = [](std::size_t, std::string_view text) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    };
  }
  auto result = adapters::generate(*engine, request, hooks);
  if (result.reason != adapters::stop_reason::stop_string) {
    const std::string rest = decoder.flush();
    result.text += rest;
    if (!o.json) std::fwrite(rest.data(), 1, rest.size(), stdout);
  }

  const std::size_t n_gen = result.tokens.size();
  const double decode_tps = result.decode_seconds > 0 && n_gen > 1 ? static_cast<double>(n_gen - 1) / result.decode_seconds : 0.0;
  const double prefill_tps = result.prefill_seconds > 0 ? static_cast<double>(request.prompt.size()) / result.prefill_seconds : 0.0;
  if (o.json) {
    nlohmann::json j = {{"model", o.model},
                        {"device", engine->summary().device},
                        {"seed", o.sampling.seed},
                        {"prompt_ids", request.prompt},
                        {"generated_ids", result.tokens},
                        {"text", result.text},
                        {"stop_reason", adapters::to_string(result.reason)},
                        {"prefill_seconds", result.prefill_seconds},
                        {"decode_seconds", result.decode_seconds},
                        {"prefill_tokens_per_second", prefill_tps},
                        {"decode_tokens_per_second", decode_tps}};
    if (!result.stop_string.empty()) j["stop_string"] = result.stop_string;
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
    std::fprintf(stderr,
                 "[%zu prompt tokens, %.1f tok/s prefill; %zu generated, %.1f tok/s decode; stop: %s; seed %llu; %s]\n",
                 request.prompt.size(), prefill_tps, n_gen, decode_tps, std::string(adapters::to_string(result.reason)).c_str(),
                 static_cast<unsigned long long>(o.sampling.seed), engine->summary().device.c_str());
  }
  return 0;
}

}  // namespace worker::tools
