// The stable error codes of the wire protocol (docs/protocol.md §4.6). Their spelling on the wire never
// changes; clients switch on them. `retriable` is the default hint sent with each code.
#pragma once

#include <optional>
#include <string_view>

namespace worker::protocol {

enum class error_code {
  invalid_request,      // not msgpack / not a map / wrong types / out of range / bad UTF-8 / bad frames
  unsupported_version,  // `v` is not a version this worker speaks
  unknown_kind,         // `kind` is not a client message kind
  message_too_large,    // body above limits::max_message_bytes
  duplicate_job,        // job_id equals a live job's (the live job is unaffected)
  context_overflow,     // prompt tokens + max_tokens exceed the context
  queue_full,           // the bounded queue is full (backpressure)
  not_ready,            // the model is still loading
  shutting_down,        // the worker is draining after SIGTERM
  cancelled,            // cancel request, client gone, or shutdown
  deadline_exceeded,    // deadline_ms elapsed
  vram_oom,             // an allocation for this job failed; the worker goes on
  insufficient_vram,    // the model does not fit at start-up
  model_load_failed,    // the model could not be loaded
  cuda_error,           // a device error ended the job
  internal,             // a bug
};

// "INVALID_REQUEST", "VRAM_OOM", ...
std::string_view to_string(error_code code);
std::optional<error_code> error_code_from_string(std::string_view text);
// Whether the same request may succeed later unchanged (queue full, shutting down, OOM).
bool is_retriable(error_code code);

}  // namespace worker::protocol
