// The supervisor, the events publisher, the model-loader and the memory-monitor actors, and
// worker_service, which starts and stops them (docs/architecture.md). Start-up order: events,
// supervisor; the supervisor spawns the ingress, starts the I/O thread (whose callbacks need the ingress
// handle) and the model-loader; when the model is in, one inference actor per stream and the memory
// monitor. Shutdown: the supervisor asks the ingress to drain;
// once every job has its terminal reply it stops the streams and the ingress, lets the events actor
// flush, and the I/O thread sends what is left and closes.
#include <caf/all.hpp>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "actors/actor_fns.hpp"

namespace worker::actors {
namespace {

// ---- events --------------------------------------------------------------------------------------

caf::behavior events_fn(caf::event_based_actor* self, context_ptr ctx) {
  auto publish = [ctx](const protocol::event& e) { ctx->hub->publish(protocol::event_topic(e), protocol::encode(e)); };
  return {
      [=](protocol::progress_event& p) {
        p.worker_id = ctx->options.worker_id;
        log_progress(p);
        publish(protocol::event{p});
      },
      [=](const protocol::narration_event& n) {
        log_narration(n);
        publish(protocol::event{n});
      },
      [=](const protocol::status_report& s) { publish(protocol::event{s}); },
      // Everything sent before this marker has been published: the events actor can stop.
      [=](drained_atom) { self->quit(); },
  };
}

// ---- model-loader (detached: loading blocks for as long as it takes) ----------------------------

caf::behavior loader_fn(caf::event_based_actor* self, context_ptr ctx, caf::actor supervisor) {
  return {
      [=](load_atom) {
        const auto& o = ctx->options;
        if (o.await_subscriber.count() > 0) ctx->hub->wait_for_subscriber(o.await_subscriber);
        const auto name = o.load.model.filename().string();
        narrate(*ctx, {"model-loader", "model_load", name, "loading " + name + " on " + o.load.device, std::nullopt,
                       std::nullopt, {{"device", o.load.device}}});
        const auto t0 = steady_clock::now();
        auto options = o.load;
        options.cancel = &ctx->stopping;
        try {
          auto bundle = load_model_bundle(options, [&](const protocol::progress_event& p) { caf::anon_send(ctx->events, p); });
          const double ms = std::chrono::duration<double, std::milli>(steady_clock::now() - t0).count();
          narrate(*ctx, {"model-loader", "model_loaded", name,
                         "loaded " + bundle->info.name + " (" + bundle->info.architecture + ", " +
                             bundle->info.quantization + ") in " + std::to_string(static_cast<long>(ms)) + " ms",
                         std::nullopt, std::nullopt,
                         {{"duration_ms", ms}, {"weight_bytes", static_cast<std::int64_t>(bundle->info.weight_bytes)},
                          {"context_length", std::int64_t{bundle->context_length}}}});
          self->send(supervisor, model_loaded_msg{std::move(bundle)});
        } catch (const load_error& e) {
          self->send(supervisor, model_failed_msg{e.code(), e.what()});
        } catch (const std::exception& e) {
          self->send(supervisor, model_failed_msg{protocol::error_code::model_load_failed, e.what()});
        }
        self->quit();
      },
  };
}

// ---- memory monitor (detached: the check asks the GPU driver, which may block briefly) -----------

struct monitor_state {
  bool resident = true;  // the previous check's verdict (narrated when it changes)
};

caf::behavior monitor_fn(caf::stateful_actor<monitor_state>* self, context_ptr ctx, std::shared_ptr<model_bundle> model,
                         caf::actor ingress) {
  self->state.resident = model->memory.report.resident;
  return {
      [=](memcheck_atom) {
        auto sample = sample_memory(*model->engine.engine);
        const auto& r = sample.report;
        if (r.resident != self->state.resident) {
          self->state.resident = r.resident;
          narrate(*ctx, {"memory-monitor", r.resident ? "resident" : "not_resident", model->device,
                         r.resident ? "residency check passed again: every allocation is device memory"
                                    : "residency check FAILED: not every allocation of the engine is device memory",
                         std::nullopt, std::nullopt,
                         {{"allocations", std::int64_t{r.allocations}},
                          {"engine_bytes", static_cast<std::int64_t>(r.engine_bytes)}}});
        }
        self->send(ingress, memory_status_msg{std::move(sample)});
        self->delayed_send(self, status_period(*ctx), memcheck_atom::value);
      },
  };
}

// ---- supervisor ------------------------------------------------------------------------------------

struct supervisor_state {
  context_ptr ctx;
  caf::actor ingress;
  caf::actor loader;
  std::vector<caf::actor> streams;
  caf::actor monitor;  // memory monitor, once the model is loaded
  std::shared_ptr<model_bundle> model;
  bool stopping = false;
  bool drained = false;
  bool loader_done = false;
  bool finished = false;
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

void set_exit(supervisor_actor* self, worker_exit code) {
  int expected = 0;
  self->state.ctx->exit_code.compare_exchange_strong(expected, static_cast<int>(code));
}

// Last step of a shutdown, once every job has its terminal reply and the loader has returned.
void maybe_finish(supervisor_actor* self) {
  auto& st = self->state;
  if (st.finished || !st.drained || !st.loader_done) return;
  st.finished = true;
  for (auto& s : st.streams) self->send_exit(s, caf::exit_reason::user_shutdown);
  if (st.monitor) self->send_exit(st.monitor, caf::exit_reason::user_shutdown);
  if (st.ingress) self->send_exit(st.ingress, caf::exit_reason::user_shutdown);
  narrate(*st.ctx, {"supervisor", "shutdown", st.ctx->options.worker_id, "worker stopped", std::nullopt, std::nullopt,
                    {{"exit_code", std::int64_t{st.ctx->exit_code.load()}}}});
  self->send(st.ctx->events, drained_atom::value);
  self->quit();
}

void begin_shutdown(supervisor_actor* self, const std::string& why) {
  auto& st = self->state;
  if (st.stopping) return;
  st.stopping = true;
  st.ctx->stopping = true;
  narrate(*st.ctx, {"supervisor", "shutdown", st.ctx->options.worker_id, "shutting down: " + why, std::nullopt,
                    std::nullopt, {{"drain_ms", static_cast<std::int64_t>(st.ctx->options.drain.count())}}});
  self->send(st.ingress, drain_msg{st.ctx->options.drain});
}

caf::behavior supervisor_fn(supervisor_actor* self, context_ptr ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  st.ingress = spawn_ingress(self, st.ctx);
  const caf::actor ingress = st.ingress;
  socket_hub_callbacks callbacks;
  callbacks.on_request = [ingress](client_route route, protocol::request request, steady_clock::time_point received) {
    caf::anon_send(ingress, inbound_request{std::move(route), std::move(request), received});
  };
  callbacks.on_client_gone = [ingress](const std::string& id) { caf::anon_send(ingress, client_gone_msg{id}); };
  // Weak: the hub (owned by the context) holds this callback; a strong pointer would be a cycle.
  callbacks.on_refused = [weak = std::weak_ptr<worker_context>(st.ctx)](const client_route&,
                                                                       const protocol::error_reply& e) {
    const auto c = weak.lock();
    if (!c) return;
    const auto code = std::string(protocol::to_string(e.code));
    narrate(*c, {"ingress", "reject", e.job_id.value_or("request"), "refused a request: " + code + ": " + e.message,
                 e.job_id, e.correlation_id, {{"code", code}}});
  };
  st.ctx->hub->start(std::move(callbacks));
  st.loader = self->spawn<caf::detached + caf::monitored>(loader_fn, st.ctx, caf::actor_cast<caf::actor>(self));
  self->send(st.loader, load_atom::value);
  narrate(*st.ctx, {"supervisor", "startup", st.ctx->options.worker_id,
                    "worker " + st.ctx->options.worker_id + " listening on " + st.ctx->hub->listen_endpoint() +
                        ", events on " + st.ctx->hub->events_endpoint(),
                    std::nullopt, std::nullopt,
                    {{"listen", st.ctx->hub->listen_endpoint()}, {"events", st.ctx->hub->events_endpoint()},
                     {"streams", std::int64_t{st.ctx->options.streams}}}});

  self->set_down_handler([self](const caf::down_msg& d) {
    auto& st = self->state;
    if (d.source == st.loader.address()) {
      st.loader_done = true;
      return maybe_finish(self);
    }
    if (d.source == st.ingress.address()) {
      if (!st.finished) {
        narrate(*st.ctx, {"supervisor", "error", "ingress", "the ingress failed (" + to_string(d.reason) + "); stopping",
                          std::nullopt, std::nullopt, {{"code", std::string("INTERNAL")}}});
        set_exit(self, worker_exit::internal);
        st.stopping = st.drained = true;
        st.ctx->stopping = true;
        st.ingress = caf::actor{};
        maybe_finish(self);
      }
      return;
    }
    for (std::uint32_t i = 0; i < st.streams.size(); ++i) {
      if (d.source != st.streams[i].address() || st.stopping) continue;
      // A stream died (an exception escaped a step). Its jobs end with INTERNAL; a fresh actor takes
      // its place over the same model.
      st.streams[i] = spawn_inference(self, st.ctx, st.model, i, st.ingress);
      self->send(st.ingress, stream_lost_msg{i, st.streams[i]});
      narrate(*st.ctx, {"supervisor", "restart", "stream " + std::to_string(i),
                        "inference stream " + std::to_string(i) + " failed (" + to_string(d.reason) + ") and was restarted",
                        std::nullopt, std::nullopt, {{"stream", std::int64_t{i}}}});
    }
  });

  return {
      [=](model_loaded_msg& m) {
        auto& st = self->state;
        if (st.stopping) return;
        st.model = std::move(m.model);
        for (std::uint32_t i = 0; i < st.ctx->options.streams; ++i) {
          st.streams.push_back(spawn_inference(self, st.ctx, st.model, i, st.ingress));
        }
        self->send(st.ingress, model_ready_msg{st.model, st.streams});
        st.monitor = spawn_memory_monitor(self, st.ctx, st.model, st.ingress);
        narrate(*st.ctx, {"supervisor", "ready", st.ctx->options.worker_id,
                          "worker ready: " + st.model->info.name + " on " + st.model->device + ", " +
                              std::to_string(st.ctx->options.streams) + " stream(s)",
                          std::nullopt, std::nullopt, {{"context_length", std::int64_t{st.model->context_length}}}});
      },
      [=](const model_failed_msg& m) {
        auto& st = self->state;
        narrate(*st.ctx, {"model-loader", "error", st.ctx->options.load.model.filename().string(),
                          std::string(protocol::to_string(m.code)) + ": " + m.message, std::nullopt, std::nullopt,
                          {{"code", std::string(protocol::to_string(m.code))}}});
        if (!st.stopping) {
          set_exit(self, m.code == protocol::error_code::insufficient_vram ? worker_exit::insufficient_vram
                                                                           : worker_exit::model_load_failed);
        }
        begin_shutdown(self, "the model could not be loaded");
      },
      [=](shutdown_atom) { begin_shutdown(self, "requested"); },
      [=](drained_atom) {
        self->state.drained = true;
        maybe_finish(self);
      },
  };
}

}  // namespace

caf::actor spawn_events(caf::actor_system& sys, context_ptr ctx) { return sys.spawn(events_fn, std::move(ctx)); }

caf::actor spawn_memory_monitor(caf::event_based_actor* supervisor, context_ptr ctx, std::shared_ptr<model_bundle> model,
                                caf::actor ingress) {
  // One check at load time already filled model_bundle::memory; the monitor checks again at once (the
  // weights are in) and then every status period.
  auto m = supervisor->spawn<caf::detached>(monitor_fn, ctx, std::move(model), std::move(ingress));
  caf::anon_send(m, memcheck_atom::value);
  return m;
}

// ---- worker_service ------------------------------------------------------------------------------

struct worker_service::impl {
  context_ptr ctx = std::make_shared<worker_context>();
  // The actor system lives on its own thread: CAF 0.17 binds its logger to the thread that constructs
  // the system and waits for that binding to go away when the system is destroyed, so construction and
  // destruction must happen on one thread whatever thread calls start() and wait().
  std::thread owner;
  std::mutex mutex;
  std::condition_variable cv;
  caf::actor supervisor;  // guarded by mutex
  bool running = false;   // the supervisor exists
  bool finished = false;  // the system is gone
  bool started = false;
  bool waited = false;
  int exit_code = 0;

  void run() {
    {
      caf::actor_system_config config;
      const unsigned cores = std::max(2u, std::thread::hardware_concurrency());
      const unsigned threads = ctx->options.scheduler_threads ? ctx->options.scheduler_threads : cores;
      config.set("scheduler.max-threads", threads);
      caf::actor_system system{config};
      ctx->started = steady_clock::now();
      ctx->events = spawn_events(system, ctx);
      {
        std::lock_guard lock(mutex);
        supervisor = system.spawn(supervisor_fn, ctx);
        running = true;
      }
      cv.notify_all();
      system.await_all_actors_done();
      ctx->hub->stop(std::chrono::milliseconds(1000));  // flush the last replies, close the sockets
      {
        std::lock_guard lock(mutex);
        supervisor = caf::actor{};
      }
      ctx->events = caf::actor{};
    }
    std::lock_guard lock(mutex);
    exit_code = ctx->exit_code.load();
    finished = true;
    cv.notify_all();
  }
};

worker_service::worker_service(worker_options options) : impl_(std::make_unique<impl>()) {
  if (options.load.max_sequences == 0) options.load.max_sequences = options.streams * options.slots;
  impl_->ctx->options = std::move(options);
  impl_->ctx->hub = std::make_shared<socket_hub>(impl_->ctx->options.sockets);
}

worker_service::~worker_service() {
  if (impl_->started && !impl_->waited) {
    shutdown();
    wait();
  }
}

const std::string& worker_service::listen_endpoint() const { return impl_->ctx->hub->listen_endpoint(); }
const std::string& worker_service::events_endpoint() const { return impl_->ctx->hub->events_endpoint(); }

void worker_service::start() {
  if (impl_->started) return;
  impl_->started = true;
  impl_->owner = std::thread([this] { impl_->run(); });
  std::unique_lock lock(impl_->mutex);
  impl_->cv.wait(lock, [&] { return impl_->running || impl_->finished; });
}

void worker_service::shutdown() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->supervisor) caf::anon_send(impl_->supervisor, shutdown_atom::value);
}

int worker_service::wait() {
  if (!impl_->started) return 0;
  {
    std::unique_lock lock(impl_->mutex);
    impl_->cv.wait(lock, [&] { return impl_->finished; });
  }
  if (impl_->owner.joinable()) impl_->owner.join();
  impl_->waited = true;
  return impl_->exit_code;
}

}  // namespace worker::actors
