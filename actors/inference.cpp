// The inference actor: one per stream, detached (its own thread), because engine calls block for the
// length of a forward pass and must never occupy CAF's scheduler threads. It owns the stream's jobs
// (inference_core) and advances them with self-sent `step` messages, one engine step per message; a
// cancel that arrives during a step is handled right after it, before the next step (FIFO mailbox), so
// cancellation waits at most one step (one prefill chunk or one decode token).
//
// Admission control after allocation failures: the stream asks the ingress to admit at most as many
// jobs as were still running when memory ran out, and one more after each job that completes.
#include <algorithm>
#include <unordered_map>

#include "actors/actor_fns.hpp"

namespace worker::actors {
namespace {

struct inference_state {
  context_ptr ctx;
  std::shared_ptr<model_bundle> model;
  std::unique_ptr<inference_core> core;
  std::uint32_t index = 0;
  caf::actor ingress;
  std::unordered_map<std::string, caf::actor> sessions;  // job id -> its session
  bool stepping = false;
  std::uint32_t cap = 0;
  std::uint64_t ooms_seen = 0;
};

using inference_actor = caf::stateful_actor<inference_state>;

void set_cap(inference_actor* self, std::uint32_t cap) {
  auto& st = self->state;
  cap = std::clamp<std::uint32_t>(cap, 1, st.ctx->options.slots);
  if (cap == st.cap) return;
  st.cap = cap;
  self->send(st.ingress, stream_capacity_msg{st.index, cap});
}

// Called after anything that may have failed an allocation.
void check_oom(inference_actor* self) {
  auto& st = self->state;
  const auto ooms = st.core->oom_failures();
  if (ooms == st.ooms_seen) return;
  st.ooms_seen = ooms;
  const auto cap = static_cast<std::uint32_t>(std::max<std::size_t>(1, st.core->active()));
  narrate(*st.ctx, {"inference", "oom", "stream " + std::to_string(st.index),
                    "stream " + std::to_string(st.index) + " ran out of memory; admitting at most " +
                        std::to_string(cap) + " jobs at once",
                    std::nullopt, std::nullopt,
                    {{"stream", std::int64_t{st.index}}, {"cap", std::int64_t{cap}}}});
  set_cap(self, cap);
}

void kick(inference_actor* self) {
  if (self->state.stepping || self->state.core->idle()) return;
  self->state.stepping = true;
  self->send(self, step_atom::value);
}

caf::behavior inference_fn(inference_actor* self, context_ptr ctx, std::shared_ptr<model_bundle> model,
                           std::uint32_t index, caf::actor ingress) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.model = model;
  st.core = std::make_unique<inference_core>(std::move(model), st.ctx->options.prefill_chunk);
  st.index = index;
  st.ingress = std::move(ingress);
  st.cap = st.ctx->options.slots;
  return {
      [=](run_job_msg& m) {
        auto& st = self->state;
        const auto job_id = m.plan.job_id;
        if (auto failure = st.core->admit(std::move(m.plan))) {
          job_progress p;
          p.job_id = job_id;
          p.finished = true;
          p.failure = std::move(failure);
          self->send(m.session, std::move(p));
          check_oom(self);
          return;
        }
        st.sessions[job_id] = m.session;
        self->send(m.session, job_started_msg{st.index});
        kick(self);
      },
      [=](const cancel_run_msg& m) {
        auto& st = self->state;
        const bool was_running = st.core->remove(m.job_id);
        st.sessions.erase(m.job_id);
        if (m.session) self->send(m.session, job_removed_msg{was_running});
      },
      [=](step_atom) {
        auto& st = self->state;
        st.stepping = false;
        auto progress = st.core->step();
        std::uint32_t completed = 0;
        for (auto& p : progress) {
          const auto it = st.sessions.find(p.job_id);
          if (it == st.sessions.end()) continue;
          const bool finished = p.finished;
          if (finished && !p.failure) ++completed;
          self->send(it->second, std::move(p));
          if (finished) st.sessions.erase(it);
        }
        check_oom(self);
        if (completed > 0 && st.cap < st.ctx->options.slots) set_cap(self, st.cap + completed);
        kick(self);
      },
  };
}

}  // namespace

caf::actor spawn_inference(caf::event_based_actor* supervisor, context_ptr ctx, std::shared_ptr<model_bundle> model,
                           std::uint32_t index, caf::actor ingress) {
  return supervisor->spawn<caf::detached + caf::monitored>(inference_fn, std::move(ctx), std::move(model), index,
                                                           std::move(ingress));
}

}  // namespace worker::actors
