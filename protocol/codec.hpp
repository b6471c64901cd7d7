// msgpack codec of the wire protocol (docs/protocol.md). The worker decodes requests with
// decode_request, which also validates every field and lists every problem at once; it never throws on
// hostile input. Clients (examples, tests) use encode(request) and decode_reply / decode_event, which
// throw protocol_error on a body that does not follow the protocol.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/limits.hpp"
#include "protocol/messages.hpp"

namespace worker::protocol {

class protocol_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// ---- worker side ---------------------------------------------------------------------------------

// A validated request, or the error reply to send back (job_id / request_id / correlation_id are echoed
// in it when the body carried valid ones).
using decode_result = std::variant<request, error_reply>;
decode_result decode_request(std::string_view body, const limits& lim = {});

// Builds the error reply for `code` with its default `retriable` hint.
error_reply make_error(error_code code, std::string message);

std::string encode(const reply& message);
std::string encode(const event& message);
// "progress/", "status/", "narration/<job_id>/" or "narration/-/" (docs/protocol.md §5).
std::string event_topic(const event& message);

// ---- client side -----------------------------------------------------------------------------------

std::string encode(const request& message);
reply decode_reply(std::string_view body);
event decode_event(std::string_view body);

}  // namespace worker::protocol
