// `worker-orcd synth`: not implemented yet (tracked in the issues); says so instead of pretending.
#include <cstdio>

#include "tools/commands.hpp"

namespace worker::tools {

int cmd_synth(command_args) {
  std::fprintf(stderr, "worker-orcd synth: not implemented yet\n");
  return 2;
}

}  // namespace worker::tools
