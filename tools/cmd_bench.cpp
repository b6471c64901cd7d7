// `worker-orcd bench`: not implemented yet (tracked in the issues); says so instead of pretending.
#include <cstdio>

#include "tools/commands.hpp"

namespace worker::tools {

int cmd_bench(command_args) {
  std::fprintf(stderr, "worker-orcd bench: not implemented yet\n");
  return 2;
}

}  // namespace worker::tools
