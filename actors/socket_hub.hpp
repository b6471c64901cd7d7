// The worker's ZeroMQ sockets and the one I/O thread that owns them (ZeroMQ sockets are not thread-safe).
// Part of the ingress: the thread receives on the ROUTER, checks the frame envelope, decodes and
// validates each body at the edge (protocol::decode_request) and hands valid requests to a callback (the
// ingress actor); it answers decoding failures itself. Everything outbound (replies from session actors,
// events from the events actor) is queued through send() / publish(), which any thread may call; an
// eventfd wakes the I/O thread, which sends in FIFO order, so one job's replies keep their order.
//
// No CAF here: the actor glue passes callbacks, which keeps this file cheap to compile and testable alone.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "protocol/limits.hpp"
#include "protocol/messages.hpp"

namespace worker::actors {

using steady_clock = std::chrono::steady_clock;

// Where a reply goes: the client's ROUTER routing id and whether it spoke through a REQ socket (which
// expects an empty delimiter frame before the body).
struct client_route {
  std::string routing_id;
  bool req_envelope = false;
};

struct socket_hub_options {
  std::string listen = "tcp://127.0.0.1:5555";  // ROUTER bind address ("tcp://127.0.0.1:0" picks a port)
  std::string events = "tcp://127.0.0.1:5556";  // XPUB bind address
  protocol::limits limits;
  int send_hwm = 100000;  // messages queued per client before it counts as gone (see send())
  int heartbeat_ms = 1000;  // ZMTP heartbeats detect dead TCP peers (0: off)
};

struct socket_hub_callbacks {
  // A valid request from `route`, received at `received`.
  std::function<void(client_route route, protocol::request request, steady_clock::time_point received)> on_request;
  // A request the hub refused at the edge (the error reply has already been sent).
  std::function<void(const client_route& route, const protocol::error_reply& error)> on_refused;
  // Sending to this routing id failed: the client disconnected (or stopped reading for send_hwm replies).
  std::function<void(const std::string& routing_id)> on_client_gone;
};

class socket_hub {
 public:
  // Binds both sockets; throws std::runtime_error naming the endpoint when a bind fails.
  explicit socket_hub(const socket_hub_options& options);
  ~socket_hub();  // stops the thread (flushing up to 1 s) if stop() was not called
  socket_hub(const socket_hub&) = delete;
  socket_hub& operator=(const socket_hub&) = delete;

  // Starts the I/O thread. Callbacks run on it and must not block.
  void start(socket_hub_callbacks callbacks);

  // Queue a reply / an event. Thread-safe, never blocks on the network. Dropped after stop().
  void send(const client_route& route, std::string body);
  void publish(std::string topic, std::string body);

  // Stops receiving, sends what is queued (waiting at most `flush` for it to leave), closes the sockets
  // and joins the thread. Idempotent.
  void stop(std::chrono::milliseconds flush = std::chrono::milliseconds(1000));

  // The endpoints actually bound (with the port filled in when the option asked for port 0 or '*').
  const std::string& listen_endpoint() const;
  const std::string& events_endpoint() const;

  // Subscriptions currently held by SUB sockets on the events socket (XPUB_VERBOSER counts each).
  int subscriptions() const;
  // Blocks until at least one subscription exists or `timeout` passes; returns whether one exists.
  bool wait_for_subscriber(std::chrono::milliseconds timeout) const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace worker::actors
