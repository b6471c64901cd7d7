// The ingress actor: the worker's front door. The I/O thread (socket_hub) decodes and validates
// requests and hands them here. The ingress admits or refuses submits (not ready, shutting down,
// duplicate job id, queue full), spawns one session per admitted job, keeps the bounded FIFO of jobs
// waiting for a stream slot and grants slots to the stream with the most room, routes cancels, answers
// status (with the memory monitor's latest check) and ping, cancels the jobs of clients that
// disappeared, and drains on shutdown.
#include <deque>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "actors/actor_fns.hpp"
#include "actors/job_setup.hpp"

namespace worker::actors {
namespace {

struct job_entry {
  caf::actor session;
  client_route route;
  std::string correlation_id;
  std::optional<std::uint32_t> stream;  // granted slot
};

struct stream_entry {
  caf::actor actor;
  std::uint32_t active = 0;  // granted slots not yet released
  std::uint32_t cap = 0;     // admission limit (lowered after OOM)
};

struct ingress_state {
  context_ptr ctx;
  caf::actor supervisor;
  std::shared_ptr<model_bundle> model;
  protocol::worker_state state = protocol::worker_state::loading;
  std::unordered_map<std::string, job_entry> jobs;
  std::map<caf::actor_addr, std::string> job_of_session;
  std::deque<std::string> waiting;  // want_slot received, FIFO
  std::unordered_set<std::string> finished;
  std::deque<std::string> finished_order;  // bounded memory of finished job ids (cancel_ack "finished")
  std::vector<stream_entry> streams;
  std::optional<memory_sample> memory;  // the memory monitor's latest check
};

using ingress_actor = caf::stateful_actor<ingress_state>;
constexpr std::size_t k_finished_memory = 4096;

std::uint32_t queued_count(const ingress_state& st) {
  std::uint32_t n = 0;
  for (const auto& [id, j] : st.jobs) n += j.stream ? 0 : 1;
  return n;
}

protocol::status_report make_status(const ingress_state& st, std::optional<std::string> request_id) {
  protocol::status_report s;
  s.request_id = std::move(request_id);
  s.worker_id = st.ctx->options.worker_id;
  s.version = st.ctx->options.version;
  s.state = st.state;
  if (st.model) {
    s.model = st.model->info;
    s.device = st.model->device;
    // The memory monitor's latest check, else the one made right after loading.
    const memory_sample& m = st.memory ? *st.memory : st.model->memory;
    s.resident = m.report.resident;
    s.vram_used = m.report.device_used;
    s.vram_total = m.report.device_total;
    s.vram_engine = m.report.engine_bytes;
    s.residency_checked_ms = m.report.on_device ? m.checked_ms : 0;
  } else {
    s.device = st.ctx->options.load.device;
  }
  for (const auto& str : st.streams) s.jobs_active += str.active;
  s.jobs_queued = queued_count(st);
  s.streams = static_cast<std::uint32_t>(st.streams.size());
  s.uptime_s = std::chrono::duration<double>(steady_clock::now() - st.ctx->started).count();
  return s;
}

void refuse(ingress_actor* self, const client_route& route, const protocol::submit_request& r,
            const std::optional<std::string>& correlation_id, protocol::error_code code, std::string message) {
  auto e = protocol::make_error(code, message);
  e.job_id = r.job_id;
  e.correlation_id = correlation_id;
  reply_to(*self->state.ctx, route, protocol::reply{e});
  narrate(*self->state.ctx, {"ingress", "reject", r.job_id, r.job_id + " refused: " + message, r.job_id,
                             correlation_id, {{"code", std::string(protocol::to_string(code))}}});
}

void check_drained(ingress_actor* self) {
  auto& st = self->state;
  if (st.state == protocol::worker_state::draining && st.jobs.empty()) self->send(st.supervisor, drained_atom::value);
}

// Grants slots to waiting jobs while some stream has room, fullest-room first.
void dispatch(ingress_actor* self) {
  auto& st = self->state;
  while (!st.waiting.empty()) {
    stream_entry* best = nullptr;
    std::uint32_t best_index = 0;
    for (std::uint32_t i = 0; i < st.streams.size(); ++i) {
      auto& s = st.streams[i];
      if (s.active >= s.cap) continue;
      if (best == nullptr || s.cap - s.active > best->cap - best->active) {
        best = &s;
        best_index = i;
      }
    }
    if (best == nullptr) return;
    const auto job_id = st.waiting.front();
    st.waiting.pop_front();
    auto it = st.jobs.find(job_id);
    if (it == st.jobs.end()) continue;
    ++best->active;
    it->second.stream = best_index;
    self->send(it->second.session, slot_granted_msg{best_index, best->actor});
  }
}

// Forgets a job whose session ended (normally or not), releases its slot and sends the job's terminal
// reply when there is one.
void forget(ingress_actor* self, const std::string& job_id, const protocol::reply* terminal = nullptr) {
  auto& st = self->state;
  auto it = st.jobs.find(job_id);
  if (it == st.jobs.end()) return;
  if (terminal != nullptr) reply_to(*st.ctx, it->second.route, *terminal);
  if (it->second.stream && *it->second.stream < st.streams.size()) {
    auto& s = st.streams[*it->second.stream];
    if (s.active > 0) --s.active;
  }
  st.job_of_session.erase(it->second.session.address());
  st.jobs.erase(it);
  std::erase(st.waiting, job_id);
  if (st.finished.insert(job_id).second) st.finished_order.push_back(job_id);
  while (st.finished_order.size() > k_finished_memory) {
    st.finished.erase(st.finished_order.front());
    st.finished_order.pop_front();
  }
  dispatch(self);
  check_drained(self);
}

void on_submit(ingress_actor* self, const client_route& route, protocol::submit_request& r,
               steady_clock::time_point received) {
  auto& st = self->state;
  using protocol::error_code;
  if (st.state == protocol::worker_state::loading) {
    return refuse(self, route, r, r.correlation_id, error_code::not_ready, "the model is still loading");
  }
  if (st.state == protocol::worker_state::draining) {
    return refuse(self, route, r, r.correlation_id, error_code::shutting_down, "the worker is shutting down");
  }
  if (st.jobs.count(r.job_id) != 0) {
    return refuse(self, route, r, r.correlation_id, error_code::duplicate_job,
                  "job_id " + r.job_id + " is already running; the running job is not affected");
  }
  const auto queued = queued_count(st);
  if (queued >= st.ctx->options.max_queue) {
    return refuse(self, route, r, r.correlation_id, error_code::queue_full,
                  std::to_string(queued) + " jobs are already waiting (--max-queue " +
                      std::to_string(st.ctx->options.max_queue) + ")");
  }
  session_init init;
  init.ctx = st.ctx;
  init.model = st.model;
  init.ingress = caf::actor_cast<caf::actor>(self);
  init.route = route;
  init.correlation_id = r.correlation_id ? *r.correlation_id : new_correlation_id();
  init.received = received;
  init.queue_position = static_cast<std::uint32_t>(st.waiting.size());
  const auto job_id = r.job_id;
  const auto correlation_id = init.correlation_id;
  init.request = std::move(r);
  auto session = spawn_session(self, std::move(init));
  st.job_of_session[session.address()] = job_id;
  st.jobs[job_id] = job_entry{std::move(session), route, correlation_id, std::nullopt};
}

void on_cancel(ingress_actor* self, const client_route& route, const protocol::cancel_request& c) {
  auto& st = self->state;
  protocol::cancel_ack ack{c.job_id, c.request_id, protocol::cancel_state::unknown};
  if (auto it = st.jobs.find(c.job_id); it != st.jobs.end()) {
    ack.state = protocol::cancel_state::cancelling;
    self->send(it->second.session, stop_job_msg{stop_cause::cancel_request});
    narrate(*st.ctx, {"ingress", "cancel", c.job_id, "cancel requested for " + c.job_id, c.job_id,
                      it->second.correlation_id, {}});
  } else if (st.finished.count(c.job_id) != 0) {
    ack.state = protocol::cancel_state::finished;
  }
  reply_to(*st.ctx, route, protocol::reply{ack});
}

void stop_all(ingress_actor* self, stop_cause cause, bool queued_only) {
  for (const auto& [id, j] : self->state.jobs) {
    if (!queued_only || !j.stream) self->send(j.session, stop_job_msg{cause});
  }
}

caf::behavior ingress_fn(ingress_actor* self, context_ptr ctx, caf::actor supervisor) {
  self->state.ctx = std::move(ctx);
  self->state.supervisor = std::move(supervisor);
  self->set_down_handler([self](const caf::down_msg& d) {
    auto& st = self->state;
    const auto it = st.job_of_session.find(d.source);
    if (it == st.job_of_session.end()) return;
    const auto job_id = it->second;
    const auto jit = st.jobs.find(job_id);
    if (jit != st.jobs.end()) {
      // The session died without its terminal reply (it sends job_done before quitting). Answer for it
      // and make sure the stream drops the job.
      auto e = protocol::make_error(protocol::error_code::internal, "the job's session failed: " + to_string(d.reason));
      e.job_id = job_id;
      e.correlation_id = jit->second.correlation_id;
      reply_to(*st.ctx, jit->second.route, protocol::reply{e});
      if (jit->second.stream && *jit->second.stream < st.streams.size()) {
        self->send(st.streams[*jit->second.stream].actor, cancel_run_msg{job_id, caf::actor{}});
      }
      narrate(*st.ctx, {"ingress", "error", job_id, job_id + " failed: its session died", job_id,
                        jit->second.correlation_id, {{"code", std::string("INTERNAL")}}});
    }
    forget(self, job_id);
  });
  self->delayed_send(self, status_period(*self->state.ctx), tick_atom::value);
  return {
      [=](inbound_request& in) {
        std::visit(
            [&](auto& r) {
              using T = std::decay_t<decltype(r)>;
              auto& st = self->state;
              if constexpr (std::is_same_v<T, protocol::submit_request>) {
                on_submit(self, in.route, r, in.received);
              } else if constexpr (std::is_same_v<T, protocol::cancel_request>) {
                on_cancel(self, in.route, r);
              } else if constexpr (std::is_same_v<T, protocol::status_request>) {
                reply_to(*st.ctx, in.route, protocol::reply{make_status(st, r.request_id)});
              } else {
                reply_to(*st.ctx, in.route,
                         protocol::reply{protocol::pong_reply{r.request_id, st.ctx->options.worker_id, unix_ms()}});
              }
            },
            in.request);
      },
      [=](const want_slot_msg& m) {
        auto& st = self->state;
        if (st.jobs.count(m.job_id) == 0) return;
        st.waiting.push_back(m.job_id);
        dispatch(self);
      },
      [=](const job_done_msg& m) { forget(self, m.job_id, &m.terminal); },
      [=](memory_status_msg& m) { self->state.memory = std::move(m.sample); },
      [=](const stream_capacity_msg& m) {
        auto& st = self->state;
        if (m.stream < st.streams.size()) st.streams[m.stream].cap = m.cap;
        dispatch(self);
      },
      [=](const client_gone_msg& m) {
        auto& st = self->state;
        std::vector<std::string> gone;
        for (const auto& [id, j] : st.jobs) {
          if (j.route.routing_id == m.routing_id) {
            self->send(j.session, stop_job_msg{stop_cause::client_gone});
            gone.push_back(id);
          }
        }
        if (gone.empty()) return;
        narrate(*st.ctx, {"ingress", "client_gone", "client",
                          "a client disconnected; cancelling its " + std::to_string(gone.size()) + " job(s)",
                          std::nullopt, std::nullopt, {{"jobs", static_cast<std::int64_t>(gone.size())}}});
      },
      [=](model_ready_msg& m) {
        auto& st = self->state;
        st.model = std::move(m.model);
        for (auto& a : m.streams) st.streams.push_back(stream_entry{std::move(a), 0, st.ctx->options.slots});
        if (st.state == protocol::worker_state::loading) st.state = protocol::worker_state::ready;
      },
      [=](stream_lost_msg& m) {
        auto& st = self->state;
        if (m.index >= st.streams.size()) return;
        st.streams[m.index].actor = std::move(m.replacement);
        st.streams[m.index].cap = st.ctx->options.slots;
        for (const auto& [id, j] : st.jobs) {
          if (j.stream == m.index) self->send(j.session, stop_job_msg{stop_cause::stream_lost});
        }
      },
      [=](const drain_msg& m) {
        auto& st = self->state;
        st.state = protocol::worker_state::draining;
        stop_all(self, stop_cause::shutdown, true);  // queued jobs end now; running ones get the budget
        self->delayed_send(self, m.budget, drain_end_atom::value);
        check_drained(self);
      },
      [=](drain_end_atom) { stop_all(self, stop_cause::shutdown, false); },
      [=](tick_atom) {
        auto& st = self->state;
        caf::anon_send(st.ctx->events, make_status(st, std::nullopt));
        self->delayed_send(self, status_period(*st.ctx), tick_atom::value);
      },
      [=](caf::get_atom) { return make_status(self->state, std::nullopt); },
  };
}

}  // namespace

caf::actor spawn_ingress(caf::event_based_actor* supervisor, context_ptr ctx) {
  return supervisor->spawn<caf::monitored>(ingress_fn, std::move(ctx), caf::actor_cast<caf::actor>(supervisor));
}

}  // namespace worker::actors
