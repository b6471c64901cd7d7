// Size and range limits of the wire protocol (docs/protocol.md §1.1, §3.1). One struct so that the
// worker's flags, the codec and the tests agree on every bound.
#pragma once

#include <cstddef>
#include <cstdint>

namespace worker::protocol {

struct limits {
  std::size_t max_message_bytes = 1u << 20;         // body bytes; above: MESSAGE_TOO_LARGE
  std::int64_t socket_max_message_bytes = 4 << 20;  // ZMQ_MAXMSGSIZE; above: libzmq drops the peer
  std::size_t max_prompt_bytes = 262144;            // prompt, or the sum of all message contents
  std::size_t max_messages = 256;                   // chat messages per submit
  std::uint32_t max_tokens = 16384;                 // upper bound of submit.max_tokens
  std::size_t max_stop_strings = 8;
  std::size_t max_stop_bytes = 128;                 // per stop string
  std::size_t max_id_bytes = 128;                   // job_id, correlation_id, request_id
  std::uint32_t max_top_k = 1000000;
  std::uint64_t max_deadline_ms = 86400000;         // one day

  // msgpack::unpack_limit for request bodies: bounds what the parser allocates before validation.
  std::size_t unpack_max_array = 1024;
  std::size_t unpack_max_map = 64;
  std::size_t unpack_max_depth = 4;  // submit map > messages array > message map > string
};

}  // namespace worker::protocol
