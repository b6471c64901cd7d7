// Narration: the worker's story of what it does, one structured event per step of a job's or the
// worker's life (docs/protocol.md §5). Each event goes to the log through spdlog (text or JSON lines)
// and, through the events actor, to the PUB socket. Every line carries the correlation id when there is
// one. Prompts and completions are never narrated; credential-looking strings are redacted.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/messages.hpp"

namespace worker::actors {

enum class log_format { text, json };

// Installs the process-wide spdlog logger (stderr). `level`: trace, debug, info, warn, error, off.
void configure_logging(log_format format, std::string_view level);

// Replaces secrets with "[REDACTED]": `Bearer <token>`, `<key>=<value>` for api_key/apikey/token/secret/
// password, PEM private key blocks, and passwords in URLs (scheme://user:pass@host). CR/LF and other
// control characters become spaces.
std::string redact(std::string_view text);

struct narration_args {
  std::string actor;   // "ingress", "session", "inference", "model-loader", "supervisor", "events"
  std::string action;  // "accept", "start", "end", ...
  std::string target;
  std::string human;   // one short sentence
  std::optional<std::string> job_id;
  std::optional<std::string> correlation_id;
  std::vector<std::pair<std::string, protocol::narration_value>> fields;
};

// Builds the event (redacted, `human` cut to 160 bytes on a UTF-8 boundary, time stamped).
protocol::narration_event make_narration(const std::string& worker_id, narration_args args);

// Writes the event as one log line; errors (action "error"/"reject") log at warn level.
void log_narration(const protocol::narration_event& event);

// Writes a load progress event as one log line (text or JSON, like narration).
void log_progress(const protocol::progress_event& event);

// Milliseconds since the Unix epoch.
std::uint64_t unix_ms();

}  // namespace worker::actors
