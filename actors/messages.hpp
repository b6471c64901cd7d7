// The typed messages the worker's actors exchange (docs/architecture.md has the topology). Included
// only by the actor TUs (it pulls in CAF). All of them stay inside one process, so they are marked
// unsafe-but-allowed (no serialization) instead of carrying inspect() overloads.
#pragma once

#include <caf/all.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/inference_core.hpp"
#include "actors/model_bundle.hpp"
#include "actors/socket_hub.hpp"
#include "protocol/messages.hpp"

namespace worker::actors {

// ---- atoms (at most 10 characters) --------------------------------------------------------------
using step_atom = caf::atom_constant<caf::atom("step")>;          // inference: run one engine step
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;  // session: the job's deadline passed
using tick_atom = caf::atom_constant<caf::atom("tick")>;          // ingress: publish a status event
using drain_end_atom = caf::atom_constant<caf::atom("drainend")>; // ingress: drain budget used up
using drained_atom = caf::atom_constant<caf::atom("drained")>;    // ingress -> supervisor: no job left
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;  // -> supervisor: SIGTERM
using load_atom = caf::atom_constant<caf::atom("load")>;          // -> model-loader: start loading
using memcheck_atom = caf::atom_constant<caf::atom("memcheck")>;  // memory monitor: run the memory check

// Why a session must stop its job early.
enum class stop_cause { cancel_request, client_gone, shutdown, deadline, stream_lost };

// ---- I/O thread -> ingress ----------------------------------------------------------------------
struct inbound_request {
  client_route route;
  protocol::request request;
  steady_clock::time_point received;
};
struct client_gone_msg {
  std::string routing_id;
};

// ---- supervisor / model-loader -> ingress ---------------------------------------------------------
struct model_ready_msg {
  std::shared_ptr<model_bundle> model;
  std::vector<caf::actor> streams;  // inference actor per stream index
};
struct model_loaded_msg {
  std::shared_ptr<model_bundle> model;
};
struct model_failed_msg {
  protocol::error_code code;
  std::string message;
};
struct stream_lost_msg {  // supervisor -> ingress: stream `index` died; `replacement` serves from now on
  std::uint32_t index;
  caf::actor replacement;
};
struct memory_status_msg {  // memory monitor -> ingress: the latest memory check, for `status`
  memory_sample sample;
};
struct drain_msg {
  std::chrono::milliseconds budget;
};

// ---- ingress <-> session --------------------------------------------------------------------------
struct want_slot_msg {  // session -> ingress: the prompt is tokenized, the job waits for a stream
  std::string job_id;
};
struct slot_granted_msg {  // ingress -> session
  std::uint32_t stream;
  caf::actor inference;
};
struct stop_job_msg {  // ingress -> session
  stop_cause cause;
};
struct job_done_msg {  // session -> ingress: the job is over; the ingress forgets it, then sends `terminal`
  std::string job_id;
  protocol::reply terminal;  // the job's one `end` or `error`
};

// ---- session <-> inference ------------------------------------------------------------------------
struct run_job_msg {
  job_plan plan;
  caf::actor session;
};
struct cancel_run_msg {
  std::string job_id;
  caf::actor session;  // gets job_removed_msg
};
struct job_started_msg {  // inference -> session: the KV sequence is open
  std::uint32_t stream;
};
struct job_removed_msg {  // inference -> session: answer to cancel_run_msg (KV slot freed)
  bool was_running;
};
struct stream_capacity_msg {  // inference -> ingress: admit at most `cap` jobs at once (after OOM)
  std::uint32_t stream;
  std::uint32_t cap;
};

}  // namespace worker::actors

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::inbound_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::client_gone_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::model_ready_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::model_loaded_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::model_failed_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::stream_lost_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::memory_status_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::drain_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::want_slot_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::slot_granted_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::stop_job_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::job_done_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::run_job_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::cancel_run_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::job_started_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::job_removed_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::stream_capacity_msg)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::actors::job_progress)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::protocol::progress_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::protocol::narration_event)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(worker::protocol::status_report)
