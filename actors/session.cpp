// The session actor: one per job, from admission to its one terminal reply. It renders and tokenizes the
// prompt, answers `accepted`, waits for a stream slot, hands the job to the inference actor and turns
// what comes back into `started`, `token`* and `end`; a cancel, client loss, shutdown or the deadline
// stops the job through the inference actor (which frees the KV slot first) and ends it with `error`.
// The session is the only sender of its job's replies (the terminal one goes through the ingress, see
// finish) and quits right after the terminal one, which is what makes "exactly one terminal, nothing
// after it" hold.
#include "actors/actor_fns.hpp"
#include "actors/job_setup.hpp"

namespace worker::actors {
namespace {

enum class phase {
  queued,    // waiting for slot_granted
  running,   // run_job sent; started / tokens flowing
  stopping,  // cancel_run sent; waiting for job_removed (or the job's own end, whichever comes first)
  done,
};

struct session_state {
  session_init init;
  job_plan plan;
  phase at = phase::queued;
  caf::actor inference;
  std::optional<stop_cause> stopping_for;
  std::uint32_t stream = 0;
  steady_clock::time_point started;
};

using session_actor = caf::stateful_actor<session_state>;

const worker_context& ctx_of(session_actor* self) { return *self->state.init.ctx; }

double ms_since(steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(steady_clock::now() - t).count();
}

void narrate_job(session_actor* self, std::string action, std::string human,
                 std::vector<std::pair<std::string, protocol::narration_value>> fields = {}) {
  const auto& in = self->state.init;
  narrate(*in.ctx, {"session", std::move(action), in.request.job_id, std::move(human), in.request.job_id,
                    in.correlation_id, std::move(fields)});
}

void send_reply(session_actor* self, const protocol::reply& r) {
  reply_to(ctx_of(self), self->state.init.route, r);
}

// The one terminal path. The ingress sends the terminal reply after it has forgotten the job, so a
// cancel that reaches the ingress after the client saw the terminal is answered `finished`. Replies
// sent before (tokens) are already queued in the I/O thread, so the order holds.
void finish(session_actor* self, protocol::reply terminal) {
  auto& st = self->state;
  if (st.at == phase::done) return;
  st.at = phase::done;
  self->send(st.init.ingress, job_done_msg{st.init.request.job_id, std::move(terminal)});
  self->quit();
}

void fail(session_actor* self, protocol::error_code code, std::string message) {
  auto& st = self->state;
  auto e = protocol::make_error(code, message);
  e.job_id = st.init.request.job_id;
  e.correlation_id = st.init.correlation_id;
  narrate_job(self, "error", st.init.request.job_id + " failed: " + std::string(protocol::to_string(code)),
              {{"code", std::string(protocol::to_string(code))}, {"reason", message},
               {"duration_ms", ms_since(st.init.received)}});
  finish(self, protocol::reply{std::move(e)});
}

std::pair<protocol::error_code, std::string> describe(stop_cause cause) {
  switch (cause) {
    case stop_cause::cancel_request: return {protocol::error_code::cancelled, "cancelled by request"};
    case stop_cause::client_gone: return {protocol::error_code::cancelled, "cancelled: the client disconnected"};
    case stop_cause::shutdown: return {protocol::error_code::cancelled, "cancelled: the worker is shutting down"};
    case stop_cause::deadline: return {protocol::error_code::deadline_exceeded, "the job's deadline passed"};
    case stop_cause::stream_lost: return {protocol::error_code::internal, "the inference stream running the job failed"};
  }
  return {protocol::error_code::internal, "stopped"};
}

void stop_with(session_actor* self, stop_cause cause) {
  auto& st = self->state;
  if (st.at == phase::done || st.at == phase::stopping) return;
  if (st.at == phase::queued || cause == stop_cause::stream_lost) {
    // No KV slot to free (queued), or nobody left to free it (the stream died with it).
    auto [code, message] = describe(cause);
    return fail(self, code, message);
  }
  st.at = phase::stopping;
  st.stopping_for = cause;
  self->send(st.inference, cancel_run_msg{st.init.request.job_id, caf::actor_cast<caf::actor>(self)});
}

void on_progress(session_actor* self, job_progress& p) {
  auto& st = self->state;
  if (st.at == phase::done) return;
  const auto& job_id = st.init.request.job_id;
  if (p.failure) return fail(self, p.failure->code, p.failure->message);
  if (p.token) {
    send_reply(self, protocol::reply{protocol::token_reply{job_id, st.init.correlation_id, p.index, {*p.token},
                                                           std::move(p.text), std::move(p.channel)}});
  }
  if (!p.finished) return;
  protocol::end_reply e;
  e.job_id = job_id;
  e.correlation_id = st.init.correlation_id;
  e.reason = p.reason;
  if (p.reason == protocol::stop_reason::stop_sequence) e.stop_sequence = p.stop_string;
  e.tokens_in = static_cast<std::uint32_t>(st.plan.prompt.size());
  e.tokens_out = p.tokens_out;
  e.seed = st.plan.sampling.seed;
  e.timings.queue_ms = std::chrono::duration<double, std::milli>(st.started - st.init.received).count();
  e.timings.prefill_ms = p.prefill_ms;
  e.timings.decode_ms = p.decode_ms;
  e.timings.total_ms = ms_since(st.init.received);
  // Decode rate over the tokens after the first (the first one's time is prefill).
  e.timings.decode_tokens_per_s = p.decode_ms > 0 && p.tokens_out > 1 ? (p.tokens_out - 1) / (p.decode_ms / 1000.0) : 0;
  narrate_job(self, "end",
              job_id + " finished: " + std::string(protocol::to_string(p.reason)) + " after " +
                  std::to_string(p.tokens_out) + " tokens in " + std::to_string(static_cast<long>(e.timings.total_ms)) +
                  " ms",
              {{"tokens_in", std::int64_t{e.tokens_in}}, {"tokens_out", std::int64_t{e.tokens_out}},
               {"stop_reason", std::string(protocol::to_string(p.reason))}, {"duration_ms", e.timings.total_ms},
               {"tokens_per_s", e.timings.decode_tokens_per_s}});
  finish(self, protocol::reply{std::move(e)});
}

caf::behavior session_fn(session_actor* self, session_init init) {
  auto& st = self->state;
  st.init = std::move(init);
  const auto& job_id = st.init.request.job_id;

  auto planned = plan_job(*st.init.model, st.init.request);
  if (auto* refusal = std::get_if<protocol::error_reply>(&planned)) {
    // Refused at the door: the job gets only this error.
    refusal->job_id = job_id;
    refusal->correlation_id = st.init.correlation_id;
    narrate_job(self, "reject", job_id + " refused: " + refusal->message,
                {{"code", std::string(protocol::to_string(refusal->code))}});
    finish(self, protocol::reply{*refusal});
    return {};
  }
  st.plan = std::move(std::get<job_plan>(planned));
  send_reply(self, protocol::reply{protocol::accepted_reply{job_id, st.init.correlation_id, st.init.queue_position}});
  narrate_job(self, "accept",
              job_id + " accepted: " + std::to_string(st.plan.prompt.size()) + " prompt tokens, queue position " +
                  std::to_string(st.init.queue_position),
              {{"tokens_in", static_cast<std::int64_t>(st.plan.prompt.size())},
               {"max_tokens", std::int64_t{st.plan.max_tokens}},
               {"queue_position", std::int64_t{st.init.queue_position}}});

  if (st.init.request.deadline_ms) {
    const auto deadline = st.init.received + std::chrono::milliseconds(*st.init.request.deadline_ms);
    const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - steady_clock::now());
    self->delayed_send(self, std::max(left, std::chrono::microseconds(0)), deadline_atom::value);
  }
  self->send(st.init.ingress, want_slot_msg{job_id});

  return {
      [=](const slot_granted_msg& m) {
        auto& st = self->state;
        if (st.at != phase::queued) return;
        st.at = phase::running;
        st.inference = m.inference;
        st.stream = m.stream;
        self->send(m.inference, run_job_msg{st.plan, caf::actor_cast<caf::actor>(self)});
      },
      [=](const job_started_msg& m) {
        auto& st = self->state;
        if (st.at == phase::done) return;
        st.started = steady_clock::now();
        send_reply(self, protocol::reply{protocol::started_reply{
                             st.init.request.job_id, st.init.correlation_id, static_cast<std::uint32_t>(st.plan.prompt.size()),
                             st.plan.max_tokens, st.plan.sampling.seed, m.stream}});
        narrate_job(self, "start",
                    st.init.request.job_id + " started on stream " + std::to_string(m.stream) + " after " +
                        std::to_string(static_cast<long>(ms_since(st.init.received))) + " ms",
                    {{"stream", std::int64_t{m.stream}}, {"seed", std::to_string(st.plan.sampling.seed)}});
      },
      [=](job_progress& p) { on_progress(self, p); },
      [=](const stop_job_msg& m) { stop_with(self, m.cause); },
      [=](deadline_atom) { stop_with(self, stop_cause::deadline); },
      [=](const job_removed_msg&) {
        auto& st = self->state;
        if (st.at != phase::stopping) return;
        auto [code, message] = describe(*st.stopping_for);
        narrate_job(self, "cancel", st.init.request.job_id + " stopped: " + message,
                    {{"code", std::string(protocol::to_string(code))}});
        fail(self, code, message);
      },
  };
}

}  // namespace

caf::actor spawn_session(caf::event_based_actor* ingress, session_init init) {
  return ingress->spawn<caf::monitored>(session_fn, std::move(init));
}

}  // namespace worker::actors
