// worker-orcd: one binary, many subcommands, so that every tool is discoverable from --help.
#include <cstdio>
#include <exception>
#include <string_view>
#include <vector>

#include "tools/commands.hpp"

namespace {

struct subcommand {
  std::string_view name;
  std::string_view summary;
  int (*run)(worker::tools::command_args);
};

constexpr subcommand k_subcommands[] = {
    {"serve", "run the worker: ZeroMQ ROUTER + PUB events, CAF actors", worker::tools::cmd_serve},
    {"generate", "generate text from a prompt or chat message", worker::tools::cmd_generate},
    {"bench", "benchmark load, prefill and decode", worker::tools::cmd_bench},
    {"inspect", "describe a GGUF file: architecture, hyperparameters, tensors, VRAM", worker::tools::cmd_inspect},
    {"synth", "write a seeded random-weight GGUF with a real model's layout", worker::tools::cmd_synth},
    {"tokenize", "tokenize UTF-8 text from stdin", worker::tools::cmd_tokenize},
    {"detokenize", "turn token ids from stdin back into text", worker::tools::cmd_detokenize},
};

void print_help() {
  std::printf("worker-orcd %s: single-GPU LLM inference worker\n\nusage: worker-orcd <command> [options]\n\n",
              WORKER_ORCD_VERSION);
  std::printf("commands:\n");
  for (const auto& c : k_subcommands) {
    std::printf("  %-11.*s %.*s\n", static_cast<int>(c.name.size()), c.name.data(),
                static_cast<int>(c.summary.size()), c.summary.data());
  }
  std::printf("\n`worker-orcd <command> --help` describes each command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    print_help();
    return 2;
  }
  const std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_help();
    return 0;
  }
  if (name == "--version") {
    // The engine list is what scripts (demo.sh) read to know whether --device cuda:N can work here.
#if WORKER_ORCD_HAVE_CUDA
    std::printf("worker-orcd %s (engines: cpu cuda)\n", WORKER_ORCD_VERSION);
#else
    std::printf("worker-orcd %s (engines: cpu)\n", WORKER_ORCD_VERSION);
#endif
    return 0;
  }
  std::vector<std::string_view> args(argv + 2, argv + argc);
  for (const auto& c : k_subcommands) {
    if (c.name == name) {
      try {
        return c.run(args);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "worker-orcd %s: error: %s\n", argv[1], e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "worker-orcd: unknown command '%s'\n\n", argv[1]);
  print_help();
  return 2;
}
