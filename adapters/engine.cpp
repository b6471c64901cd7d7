// Names of the engine error codes (adapters/engine.hpp), for logs and error replies.
#include "adapters/engine.hpp"

namespace worker::adapters {

std::string_view to_string(engine_error_code code) {
  switch (code) {
    case engine_error_code::context_overflow: return "context_overflow";
    case engine_error_code::kv_exhausted: return "kv_exhausted";
    case engine_error_code::vram_oom: return "vram_oom";
    case engine_error_code::invalid_argument: return "invalid_argument";
    case engine_error_code::device_error: return "device_error";
    case engine_error_code::internal: return "internal";
  }
  return "unknown";
}

}  // namespace worker::adapters
