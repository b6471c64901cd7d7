// `worker-orcd tokenize`: not implemented yet (tracked in the issues); says so instead of pretending.
#include <cstdio>

#include "tools/commands.hpp"

namespace worker::tools {

int cmd_tokenize(command_args) {
  std::fprintf(stderr, "worker-orcd tokenize: not implemented yet\n");
  return 2;
}

}  // namespace worker::tools
