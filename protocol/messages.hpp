// The wire messages as plain structs (docs/protocol.md §3-§5). Decoded and validated only at the edge
// (protocol/codec.hpp); everything above works with these types, never with msgpack objects.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "protocol/error_code.hpp"

namespace worker::protocol {

inline constexpr std::uint32_t k_protocol_version = 1;

// ---- client -> worker --------------------------------------------------------------------------

enum class chat_role { system, developer, user, assistant };
enum class reasoning_effort { low, medium, high };

struct chat_message {
  chat_role role = chat_role::user;
  std::string content;
};

// Sampling fields of `submit`, defaults as in docs/protocol.md §3.1.
struct sampling_params {
  std::uint32_t max_tokens = 256;
  float temperature = 1.0f;  // 0 = greedy
  std::uint32_t top_k = 0;   // 0 = off
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::optional<std::uint64_t> seed;  // absent: the worker picks one and reports it
  std::vector<std::string> stop;      // stop strings, matched on the decoded text
};

struct submit_request {
  std::string job_id;
  std::optional<std::string> prompt;   // raw text; exactly one of prompt / messages is set
  std::vector<chat_message> messages;  // chat; rendered with the model's chat format
  std::optional<std::string> assistant_prefill;  // chat: the start of the assistant's reply
  reasoning_effort effort = reasoning_effort::medium;
  std::optional<std::string> date;     // YYYY-MM-DD for harmony's system message
  sampling_params sampling;
  std::optional<std::string> correlation_id;
  std::optional<std::uint64_t> deadline_ms;  // relative to the worker's receipt of the submit
};

struct cancel_request {
  std::string job_id;
  std::optional<std::string> request_id;
};

struct status_request {
  std::optional<std::string> request_id;
};

struct ping_request {
  std::optional<std::string> request_id;
};

using request = std::variant<submit_request, cancel_request, status_request, ping_request>;

// ---- worker -> client --------------------------------------------------------------------------

struct field_problem {
  std::string field;    // "top_p", "messages[2].role", "stop[0]"
  std::string problem;  // "must be in (0, 1]"
  bool operator==(const field_problem&) const = default;
};

struct error_reply {
  std::optional<std::string> job_id;
  std::optional<std::string> correlation_id;
  std::optional<std::string> request_id;
  error_code code = error_code::internal;
  std::string message;
  bool retriable = false;
  std::vector<field_problem> fields;  // INVALID_REQUEST only
};

struct accepted_reply {
  std::string job_id;
  std::string correlation_id;
  std::uint32_t queue_position = 0;
};

struct started_reply {
  std::string job_id;
  std::string correlation_id;
  std::uint32_t prompt_tokens = 0;
  std::uint32_t max_tokens = 0;
  std::uint64_t seed = 0;
  std::uint32_t stream = 0;
};

struct token_reply {
  std::string job_id;
  std::string correlation_id;
  std::uint32_t index = 0;              // position of token_ids[0] among the generated tokens
  std::vector<std::int32_t> token_ids;  // >= 1 ids
  std::string text;                     // complete UTF-8 released by these tokens, maybe empty
  std::optional<std::string> channel;   // harmony chats: "analysis" | "commentary" | "final" | "other"
};

enum class stop_reason { max_tokens, eos, stop_sequence };

struct job_timings {
  double queue_ms = 0;
  double prefill_ms = 0;
  double decode_ms = 0;
  double total_ms = 0;
  double decode_tokens_per_s = 0;
};

struct end_reply {
  std::string job_id;
  std::string correlation_id;
  stop_reason reason = stop_reason::max_tokens;
  std::optional<std::string> stop_sequence;
  std::uint32_t tokens_in = 0;
  std::uint32_t tokens_out = 0;
  std::uint64_t seed = 0;
  job_timings timings;
};

enum class cancel_state { cancelling, finished, unknown };

struct cancel_ack {
  std::string job_id;
  std::optional<std::string> request_id;
  cancel_state state = cancel_state::unknown;
};

struct model_info {
  std::string name;
  std::string architecture;
  std::string quantization;
  std::uint32_t vocab_size = 0;
  std::uint32_t context_length = 0;
  std::uint64_t weight_bytes = 0;
};

enum class worker_state { loading, ready, draining };

struct status_report {
  std::optional<std::string> request_id;
  std::string worker_id;
  std::string version;
  worker_state state = worker_state::loading;
  std::optional<model_info> model;  // absent while loading
  std::string device;
  bool resident = false;               // last residency check passed (host engines: the model is loaded)
  std::uint64_t vram_used = 0;         // device memory in use, every process (total - free); 0 on the CPU
  std::uint64_t vram_total = 0;        // device memory; 0 on the CPU
  std::uint64_t vram_engine = 0;       // the engine's own device allocations; 0 on the CPU
  std::uint64_t residency_checked_ms = 0;  // unix ms of the last memory check; 0: none yet (or a host engine)
  std::uint32_t jobs_active = 0;
  std::uint32_t jobs_queued = 0;
  std::uint32_t streams = 0;
  double uptime_s = 0;
};

struct pong_reply {
  std::optional<std::string> request_id;
  std::string worker_id;
  std::uint64_t time_ms = 0;  // unix ms
};

using reply = std::variant<accepted_reply, started_reply, token_reply, end_reply, error_reply, cancel_ack,
                           status_report, pong_reply>;

// ---- events (XPUB) -------------------------------------------------------------------------------

enum class load_phase { open, weights, ready, failed };

struct progress_event {
  std::string worker_id;
  load_phase phase = load_phase::open;
  std::uint64_t bytes_done = 0;
  std::uint64_t bytes_total = 0;
  std::uint32_t tensors_done = 0;
  std::uint32_t tensors_total = 0;
  double percent = 0;
  double rate_mb_s = 0;
  double elapsed_ms = 0;
};

// A structured value of a narration's `fields` map.
using narration_value = std::variant<bool, std::int64_t, double, std::string>;

struct narration_event {
  std::string worker_id;
  std::string actor;   // "ingress" | "session" | "inference" | "model-loader" | "supervisor"
  std::string action;  // "accept", "start", "cancel", "end", ...
  std::string target;  // job id, model file name, ...
  std::string human;   // one short sentence
  std::optional<std::string> correlation_id;
  std::optional<std::string> job_id;
  std::uint64_t time_ms = 0;
  std::vector<std::pair<std::string, narration_value>> fields;
};

using event = std::variant<progress_event, narration_event, status_report>;

// ---- spelling of the enums on the wire ---------------------------------------------------------

std::string_view to_string(chat_role role);
std::string_view to_string(reasoning_effort effort);
std::string_view to_string(stop_reason reason);
std::string_view to_string(cancel_state state);
std::string_view to_string(worker_state state);
std::string_view to_string(load_phase phase);

}  // namespace worker::protocol
