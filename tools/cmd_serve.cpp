// `worker-orcd serve`: the worker. Parses the flags into worker_options, blocks SIGTERM/SIGINT in every
// thread and waits for them on one thread (so the shutdown runs in normal code, not in a signal
// handler), runs the actors until they stop, and returns the worker's exit code (0 after a graceful
// shutdown; 3 model load failed; 4 insufficient VRAM; 1 internal; 2 bad usage).
#include <atomic>
#include <csignal>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <limits>
#include <string>
#include <thread>

#include "actors/narration.hpp"
#include "actors/worker.hpp"
#include "tools/commands.hpp"

namespace worker::tools {
namespace {

void print_usage(std::FILE* to) {
  static_assert(actors::k_max_streams == 8, "the usage text says --streams 1..8");
  std::fprintf(to,
               "usage: worker-orcd serve --model FILE [options]\n"
               "  --model FILE              GGUF model (qwen2 or gpt-oss)\n"
               "  --device cpu|cuda:N       engine: the CPU reference engine or the CUDA engine on GPU N (default cpu)\n"
               "  --listen ENDPOINT         requests, ZeroMQ ROUTER (default tcp://127.0.0.1:5555)\n"
               "  --events ENDPOINT         events, ZeroMQ XPUB (default tcp://127.0.0.1:5556)\n"
               "  --streams N               inference streams, 1..8 (default 1)\n"
               "  --slots N                 jobs holding a KV slot per stream (default 16)\n"
               "  --max-queue N             jobs waiting for a slot before QUEUE_FULL (default 64)\n"
               "  --ctx N                   tokens per sequence (default: the model's context)\n"
               "  --prefill-chunk N         prompt tokens per step and job (default 64)\n"
               "  --threads N               CPU engine threads (default: all cores)\n"
               "  --kv-budget-mb N          CPU engine: KV memory over all jobs (default 8192)\n"
               "  --max-message-bytes N     largest request body (default 1048576)\n"
               "  --drain-ms N              on SIGTERM, time running jobs may finish (default 5000)\n"
               "  --status-interval-ms N    period of status events (default 5000)\n"
               "  --await-subscriber-ms N   before loading, wait up to N ms for an events subscriber (default 0)\n"
               "  --worker-id ID            name in status, events and logs (default worker-0)\n"
               "  --log-format text|json    log lines on stderr (default text)\n"
               "  --log-level LEVEL         trace|debug|info|warn|error|off (default info)\n"
               "The wire protocol is described in docs/protocol.md.\n");
}

template <typename T>
bool parse_number(std::string_view s, T& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

int cmd_serve(command_args args) {
  actors::worker_options o;
  o.version = WORKER_ORCD_VERSION;
  std::string log_format = "text";
  std::string log_level = "info";
  std::uint64_t kv_budget_mb = 8192;

  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (a == "--help" || a == "-h") {
      print_usage(stdout);
      return 0;
    }
    if (i + 1 >= args.size()) {
      std::fprintf(stderr, "worker-orcd serve: %.*s needs a value\n\n", static_cast<int>(a.size()), a.data());
      print_usage(stderr);
      return 2;
    }
    const std::string_view v = args[++i];
    bool ok = true;
    std::uint64_t n = 0;
    auto number = [&](auto& out) {
      ok = parse_number(v, n) && n <= std::numeric_limits<std::remove_reference_t<decltype(out)>>::max();
      if (ok) out = static_cast<std::remove_reference_t<decltype(out)>>(n);
    };
    auto millis = [&](std::chrono::milliseconds& out) {
      ok = parse_number(v, n);
      if (ok) out = std::chrono::milliseconds(n);
    };
    if (a == "--model") {
      o.load.model = std::string(v);
    } else if (a == "--device") {
      o.load.device = std::string(v);
    } else if (a == "--listen") {
      o.sockets.listen = std::string(v);
    } else if (a == "--events") {
      o.sockets.events = std::string(v);
    } else if (a == "--streams") {
      number(o.streams);
      ok = ok && o.streams >= 1 && o.streams <= actors::k_max_streams;
    } else if (a == "--slots") {
      number(o.slots);
      ok = ok && o.slots >= 1;
    } else if (a == "--max-queue") {
      number(o.max_queue);
    } else if (a == "--ctx") {
      number(o.load.max_context);
    } else if (a == "--prefill-chunk") {
      number(o.prefill_chunk);
      ok = ok && o.prefill_chunk >= 1;
    } else if (a == "--threads") {
      number(o.load.cpu_threads);
    } else if (a == "--kv-budget-mb") {
      number(kv_budget_mb);
    } else if (a == "--max-message-bytes") {
      number(o.sockets.limits.max_message_bytes);
      ok = ok && o.sockets.limits.max_message_bytes >= 1024 &&
           static_cast<std::int64_t>(o.sockets.limits.max_message_bytes) <= o.sockets.limits.socket_max_message_bytes;
    } else if (a == "--drain-ms") {
      millis(o.drain);
    } else if (a == "--status-interval-ms") {
      millis(o.status_interval);
    } else if (a == "--await-subscriber-ms") {
      millis(o.await_subscriber);
    } else if (a == "--worker-id") {
      o.worker_id = std::string(v);
    } else if (a == "--log-format") {
      log_format = std::string(v);
      ok = log_format == "text" || log_format == "json";
    } else if (a == "--log-level") {
      log_level = std::string(v);
    } else {
      std::fprintf(stderr, "worker-orcd serve: unknown option %.*s\n\n", static_cast<int>(a.size()), a.data());
      print_usage(stderr);
      return 2;
    }
    if (!ok) {
      std::fprintf(stderr, "worker-orcd serve: bad value '%.*s' for %.*s\n", static_cast<int>(v.size()), v.data(),
                   static_cast<int>(a.size()), a.data());
      return 2;
    }
  }
  if (o.load.model.empty()) {
    std::fprintf(stderr, "worker-orcd serve: --model is required\n\n");
    print_usage(stderr);
    return 2;
  }
  o.load.kv_budget_bytes = kv_budget_mb << 20;
  actors::configure_logging(log_format == "json" ? actors::log_format::json : actors::log_format::text, log_level);

  // Block the stop signals before any thread exists, so that every thread inherits the mask and only
  // the waiter below receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  actors::worker_service service(std::move(o));  // binds; throws with the endpoint on failure
  service.start();
  std::atomic<bool> done{false};
  std::thread waiter([&] {
    const timespec tick{0, 200 * 1000 * 1000};
    while (!done.load()) {
      if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) {
        service.shutdown();
        return;
      }
    }
  });
  const int code = service.wait();
  done = true;
  waiter.join();
  return code;
}

}  // namespace worker::tools
