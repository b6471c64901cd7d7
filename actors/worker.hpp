// The worker as a library: `worker-orcd serve` and the end-to-end tests both run it through
// worker_service. It binds the sockets, starts the CAF actor system (supervisor, events, ingress,
// model-loader, then one inference actor per stream and one session per job; docs/architecture.md)
// and stops it gracefully. No CAF in this header.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "actors/model_bundle.hpp"
#include "actors/socket_hub.hpp"
#include "adapters/cuda_engine.hpp"

namespace worker::actors {

// Inference streams a worker may run: each keeps up to two decode steps queued in the CUDA engine
// (inference_core's pipelined decode), which keeps k_decode_steps_in_flight.
constexpr std::uint32_t k_max_streams = adapters::k_decode_steps_in_flight / 2;

struct worker_options {
  load_options load;             // model file, device, --ctx, engine factory
  socket_hub_options sockets;    // --listen, --events, protocol limits
  std::string worker_id = "worker-0";
  std::string version = "0.0.0";
  std::uint32_t streams = 1;     // inference actors (one per CUDA stream), 1..k_max_streams
  std::uint32_t slots = 16;      // jobs holding a KV slot per stream at once
  std::uint32_t max_queue = 64;  // jobs waiting for a slot; more: QUEUE_FULL
  std::size_t prefill_chunk = 64;                       // prompt tokens per engine step and job
  std::chrono::milliseconds drain{5000};                // SIGTERM: running jobs may finish this long
  std::chrono::milliseconds status_interval{5000};      // period of `status` events
  std::chrono::milliseconds await_subscriber{0};        // wait this long for an events subscriber before loading
  unsigned scheduler_threads = 0;                       // CAF scheduler threads; 0: max(2, cores)
};

// Exit codes of a stopped worker.
enum class worker_exit : int {
  ok = 0,                 // shut down on request
  internal = 1,           // an actor the worker cannot do without failed
  model_load_failed = 3,  // MODEL_LOAD_FAILED
  insufficient_vram = 4,  // INSUFFICIENT_VRAM
};

class worker_service {
 public:
  // Binds the sockets (throws std::runtime_error when an endpoint cannot be bound).
  explicit worker_service(worker_options options);
  ~worker_service();  // shuts down and waits if still running
  worker_service(const worker_service&) = delete;
  worker_service& operator=(const worker_service&) = delete;

  const std::string& listen_endpoint() const;
  const std::string& events_endpoint() const;

  // Starts the actors; the model loads in the background (status says `loading` until it is ready).
  void start();
  // Graceful stop (what SIGTERM does): refuse new jobs, cancel queued ones, let running ones finish
  // within options.drain, send every terminal reply, close. Thread-safe; returns at once.
  void shutdown();
  // Blocks until the worker has stopped (after shutdown() or a fatal load failure); the exit code.
  int wait();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace worker::actors
