// See cli_options.hpp.
#include "tools/cli_options.hpp"

#include <cstdio>

namespace worker::tools {

namespace {

void complain(const cli_spec& spec, const std::string& what) {
  std::fprintf(stderr, "worker-orcd %.*s: %s\n\n%s", static_cast<int>(spec.command.size()), spec.command.data(),
               what.c_str(), spec.usage);
}

}  // namespace

std::optional<int> parse_cli(command_args args, const cli_spec& spec) {
  std::vector<std::string_view> given;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(spec.usage, stdout);
      return 0;
    }
    bool matched = false;
    for (const auto& [name, target] : spec.values) {
      if (a != name) continue;
      if (i + 1 >= args.size()) {
        complain(spec, std::string(name) + " needs a value");
        return 2;
      }
      *target = std::string(args[++i]);
      given.push_back(name);
      matched = true;
      break;
    }
    for (const auto& [name, target] : spec.switches) {
      if (matched || a != name) continue;
      *target = true;
      matched = true;
    }
    if (!matched) {
      complain(spec, "unknown argument '" + std::string(a) + "'");
      return 2;
    }
  }
  for (const std::string_view name : spec.required) {
    bool found = false;
    for (const std::string_view g : given) found = found || g == name;
    if (!found) {
      complain(spec, std::string(name) + " is required");
      return 2;
    }
  }
  return std::nullopt;
}

}  // namespace worker::tools
