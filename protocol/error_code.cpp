// Spelling of the stable error codes (docs/protocol.md §4.6).
#include "protocol/error_code.hpp"

#include <array>
#include <utility>

namespace worker::protocol {
namespace {

constexpr std::array<std::pair<error_code, std::string_view>, 16> k_names{{
    {error_code::invalid_request, "INVALID_REQUEST"},
    {error_code::unsupported_version, "UNSUPPORTED_VERSION"},
    {error_code::unknown_kind, "UNKNOWN_KIND"},
    {error_code::message_too_large, "MESSAGE_TOO_LARGE"},
    {error_code::duplicate_job, "DUPLICATE_JOB"},
    {error_code::context_overflow, "CONTEXT_OVERFLOW"},
    {error_code::queue_full, "QUEUE_FULL"},
    {error_code::not_ready, "NOT_READY"},
    {error_code::shutting_down, "SHUTTING_DOWN"},
    {error_code::cancelled, "CANCELLED"},
    {error_code::deadline_exceeded, "DEADLINE_EXCEEDED"},
    {error_code::vram_oom, "VRAM_OOM"},
    {error_code::insufficient_vram, "INSUFFICIENT_VRAM"},
    {error_code::model_load_failed, "MODEL_LOAD_FAILED"},
    {error_code::cuda_error, "CUDA_ERROR"},
    {error_code::internal, "INTERNAL"},
}};

}  // namespace

std::string_view to_string(error_code code) {
  for (const auto& [c, name] : k_names) {
    if (c == code) return name;
  }
  return "INTERNAL";
}

std::optional<error_code> error_code_from_string(std::string_view text) {
  for (const auto& [c, name] : k_names) {
    if (name == text) return c;
  }
  return std::nullopt;
}

bool is_retriable(error_code code) {
  return code == error_code::queue_full || code == error_code::not_ready || code == error_code::shutting_down ||
         code == error_code::vram_oom;
}

}  // namespace worker::protocol
