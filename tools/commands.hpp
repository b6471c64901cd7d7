// The subcommands of the one `worker-orcd` binary. Each lives in its own cmd_<name>.cpp and takes the
// arguments after the subcommand name. Return value is the process exit code.
#pragma once

#include <span>
#include <string_view>

namespace worker::tools {

using command_args = std::span<const std::string_view>;

int cmd_inspect(command_args args);     // describe a GGUF file
int cmd_synth(command_args args);       // write a seeded random-weight GGUF
int cmd_tokenize(command_args args);    // text on stdin -> token ids
int cmd_detokenize(command_args args);  // token ids on stdin -> text
int cmd_generate(command_args args);    // one generation on the chosen device
int cmd_bench(command_args args);       // load/prefill/decode benchmark
int cmd_serve(command_args args);       // the worker: ZeroMQ + CAF actors

}  // namespace worker::tools
