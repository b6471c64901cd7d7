// Internal to actors/: the context every actor shares and the functions that spawn each actor kind
// (defined in their own TUs: ingress.cpp, session.cpp, inference.cpp, worker.cpp). Pulls in CAF.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "actors/messages.hpp"
#include "actors/narration.hpp"
#include "actors/worker.hpp"
#include "protocol/codec.hpp"

namespace worker::actors {

// Fixed once the actors start.
struct worker_context {
  worker_options options;
  std::shared_ptr<socket_hub> hub;
  caf::actor events;  // progress / narration / status publisher
  steady_clock::time_point started = steady_clock::now();
  std::atomic<bool> stopping{false};
  std::atomic<int> exit_code{0};
};
using context_ptr = std::shared_ptr<worker_context>;

// Sends a narration to the events actor (which logs and publishes it).
inline void narrate(const worker_context& ctx, narration_args args) {
  caf::anon_send(ctx.events, make_narration(ctx.options.worker_id, std::move(args)));
}

// Sends an encoded reply to a client through the I/O thread.
inline void reply_to(const worker_context& ctx, const client_route& route, const protocol::reply& r) {
  ctx.hub->send(route, protocol::encode(r));
}

// Everything a session needs to run its job.
struct session_init {
  context_ptr ctx;
  std::shared_ptr<model_bundle> model;
  caf::actor ingress;
  client_route route;
  protocol::submit_request request;
  std::string correlation_id;
  steady_clock::time_point received;
  std::uint32_t queue_position = 0;
};

// Period of `status` events and of the memory check (--status-interval-ms, at least 100 ms).
inline std::chrono::milliseconds status_period(const worker_context& ctx) {
  return std::max(ctx.options.status_interval, std::chrono::milliseconds(100));
}

caf::actor spawn_events(caf::actor_system& sys, context_ptr ctx);
caf::actor spawn_ingress(caf::event_based_actor* supervisor, context_ptr ctx);
caf::actor spawn_session(caf::event_based_actor* ingress, session_init init);
caf::actor spawn_inference(caf::event_based_actor* supervisor, context_ptr ctx, std::shared_ptr<model_bundle> model,
                           std::uint32_t index, caf::actor ingress);
// The memory monitor (detached): every status period, the engine's memory check -> the ingress.
caf::actor spawn_memory_monitor(caf::event_based_actor* supervisor, context_ptr ctx, std::shared_ptr<model_bundle> model,
                                caf::actor ingress);

}  // namespace worker::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::session_init)
