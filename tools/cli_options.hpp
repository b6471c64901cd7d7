// A small command-line parser shared by the subcommands whose options are only `--name VALUE` and
// `--switch` flags (tokenize, detokenize): one place that prints the usage on --help and names the
// offending argument on a mistake, so every subcommand reports errors the same way.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tools/commands.hpp"

namespace worker::tools {

struct cli_spec {
  std::string_view command;  // "tokenize": used in messages as "worker-orcd tokenize: ..."
  const char* usage;         // printed on --help (stdout) and after an error (stderr)
  std::vector<std::pair<std::string_view, std::string*>> values;  // --name VALUE
  std::vector<std::pair<std::string_view, bool*>> switches;       // --name sets true
  std::vector<std::string_view> required;                         // value options that must be given
};

// Parses `args` into the spec's targets. Returns nothing when the command should go on, otherwise the
// exit code to return: 0 after --help, 2 after an unknown argument or a missing required option.
std::optional<int> parse_cli(command_args args, const cli_spec& spec);

}  // namespace worker::tools
