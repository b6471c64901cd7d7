// worker-orcd-client: a small C++ client of worker-orcd (docs/protocol.md). It can wait for the worker
// to load its model while drawing a progress bar from the events socket, then submit a chat message or
// a raw prompt and stream the completion with a live tokens/s line, or query status.
//
//   worker-orcd-client --wait-ready chat "Write a haiku about GPUs" --max-tokens 64 --seed 7
//   worker-orcd-client prompt "Once upon a time" --cancel-after 5
//   worker-orcd-client status
#include <unistd.h>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "protocol/codec.hpp"

using namespace worker::protocol;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

struct options {
  std::string endpoint = "tcp://127.0.0.1:5555";
  std::string events = "tcp://127.0.0.1:5556";
  std::string command;  // chat | prompt | status | ping
  std::string text;
  bool wait_ready = false;
  std::uint32_t max_tokens = 64;
  std::optional<float> temperature;
  std::optional<std::uint64_t> seed;
  std::vector<std::string> stop;
  std::uint32_t cancel_after = 0;
};

void usage() {
  std::fprintf(stderr,
               "usage: worker-orcd-client [--endpoint E] [--events E] [--wait-ready] chat|prompt TEXT\n"
               "                          [--max-tokens N] [--temperature T] [--seed N] [--stop S]... "
               "[--cancel-after N]\n"
               "       worker-orcd-client [--endpoint E] status|ping\n");
}

std::string new_job_id() {
  std::random_device rd;
  char buf[32];
  std::snprintf(buf, sizeof buf, "cli-%08x", rd());
  return buf;
}

std::optional<reply> receive(zmq::socket_t& s, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) == 0) return std::nullopt;
  zmq::message_t m;
  if (!s.recv(m)) return std::nullopt;
  return decode_reply(m.to_string_view());
}

// Draws the load progress from the events socket until `status` says ready (or 5 minutes pass).
bool wait_ready(zmq::context_t& ctx, zmq::socket_t& dealer, const options& o) {
  zmq::socket_t sub(ctx, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::subscribe, "progress/");
  sub.connect(o.events);
  const auto deadline = steady::now() + 300s;
  auto next_status = steady::now();
  while (steady::now() < deadline) {
    zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, 100ms) > 0) {
      std::vector<zmq::message_t> frames;
      if (zmq::recv_multipart(sub, std::back_inserter(frames)) && frames.size() == 2) {
        const auto e = decode_event(frames[1].to_string_view());
        if (const auto* p = std::get_if<progress_event>(&e)) {
          const int width = 40;
          const int done = static_cast<int>(width * p->percent / 100.0);
          std::fprintf(stderr, "\r%8s [%s%s] %5.1f%% %u/%u tensors %7.1f MB/s", std::string(to_string(p->phase)).c_str(),
                       std::string(static_cast<std::size_t>(done), '#').c_str(),
                       std::string(static_cast<std::size_t>(width - done), '.').c_str(), p->percent, p->tensors_done,
                       p->tensors_total, p->rate_mb_s);
          if (p->phase == load_phase::ready || p->phase == load_phase::failed) std::fprintf(stderr, "\n");
          if (p->phase == load_phase::failed) return false;
        }
      }
    }
    if (steady::now() >= next_status) {
      next_status = steady::now() + 500ms;
      dealer.send(zmq::buffer(encode(request{status_request{"wait"}})), zmq::send_flags::none);
      if (auto r = receive(dealer, 2s)) {
        if (const auto* s = std::get_if<status_report>(&*r); s && s->state == worker_state::ready) return true;
      }
    }
  }
  return false;
}

int run_job(zmq::socket_t& dealer, const options& o) {
  submit_request s;
  s.job_id = new_job_id();
  if (o.command == "chat") {
    s.messages = {{chat_role::user, o.text}};
  } else {
    s.prompt = o.text;
  }
  s.sampling.max_tokens = o.max_tokens;
  if (o.temperature) s.sampling.temperature = *o.temperature;
  s.sampling.seed = o.seed;
  s.sampling.stop = o.stop;
  dealer.send(zmq::buffer(encode(request{s})), zmq::send_flags::none);

  const bool live = isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
  std::uint32_t tokens = 0;
  steady::time_point first;
  for (;;) {
    auto r = receive(dealer, 120s);
    if (!r) {
      std::fprintf(stderr, "no reply from the worker\n");
      return 1;
    }
    if (const auto* t = std::get_if<token_reply>(&*r)) {
      if (t->job_id != s.job_id) continue;
      if (tokens == 0) first = steady::now();
      tokens += static_cast<std::uint32_t>(t->token_ids.size());
      // Harmony models tag text with a channel: reasoning (analysis) is shown dimmed.
      const bool reasoning = t->channel && (*t->channel == "analysis" || *t->channel == "commentary");
      if (reasoning && live) std::fputs("\x1b[2m", stdout);
      std::fwrite(t->text.data(), 1, t->text.size(), stdout);
      if (reasoning && live) std::fputs("\x1b[0m", stdout);
      std::fflush(stdout);
      const double secs = std::chrono::duration<double>(steady::now() - first).count();
      if (live && tokens > 1) std::fprintf(stderr, "\x1b""7\x1b[999;1H\x1b[2K  %u tokens  %.1f tok/s\x1b""8", tokens, (tokens - 1) / secs);
      if (o.cancel_after > 0 && tokens == o.cancel_after) {
        dealer.send(zmq::buffer(encode(request{cancel_request{s.job_id, std::nullopt}})), zmq::send_flags::none);
      }
    } else if (const auto* a = std::get_if<accepted_reply>(&*r)) {
      std::fprintf(stderr, "[%s] accepted (queue position %u)\n", a->job_id.c_str(), a->queue_position);
    } else if (const auto* st = std::get_if<started_reply>(&*r)) {
      std::fprintf(stderr, "[%s] started: %u prompt tokens, seed %llu\n", st->job_id.c_str(), st->prompt_tokens,
                   static_cast<unsigned long long>(st->seed));
    } else if (const auto* e = std::get_if<end_reply>(&*r)) {
      std::fprintf(stderr, "\n[%s] end: %s, %u tokens, prefill %.0f ms, decode %.1f tok/s, total %.0f ms\n",
                   e->job_id.c_str(), std::string(to_string(e->reason)).c_str(), e->tokens_out, e->timings.prefill_ms,
                   e->timings.decode_tokens_per_s, e->timings.total_ms);
      return 0;
    } else if (const auto* err = std::get_if<error_reply>(&*r)) {
      if (err->job_id && *err->job_id != s.job_id) continue;
      std::fprintf(stderr, "\nerror %s: %s\n", std::string(to_string(err->code)).c_str(), err->message.c_str());
      for (const auto& f : err->fields) std::fprintf(stderr, "  %s: %s\n", f.field.c_str(), f.problem.c_str());
      return err->code == error_code::cancelled && o.cancel_after > 0 ? 0 : 1;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--endpoint") o.endpoint = value();
    else if (a == "--events") o.events = value();
    else if (a == "--wait-ready") o.wait_ready = true;
    else if (a == "--max-tokens") o.max_tokens = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--temperature") o.temperature = std::stof(value());
    else if (a == "--seed") o.seed = std::stoull(value());
    else if (a == "--stop") o.stop.push_back(value());
    else if (a == "--cancel-after") o.cancel_after = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else positional.push_back(a);
  }
  if (positional.empty()) {
    usage();
    return 2;
  }
  o.command = positional[0];
  if ((o.command == "chat" || o.command == "prompt") && positional.size() != 2) {
    usage();
    return 2;
  }
  if (positional.size() > 1) o.text = positional[1];

  zmq::context_t ctx{1};
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(o.endpoint);
  try {
    if (o.wait_ready && !wait_ready(ctx, dealer, o)) {
      std::fprintf(stderr, "the worker did not become ready\n");
      return 1;
    }
    if (o.command == "chat" || o.command == "prompt") return run_job(dealer, o);
    if (o.command == "status" || o.command == "ping") {
      request r = o.command == "status" ? request{status_request{"cli"}} : request{ping_request{"cli"}};
      dealer.send(zmq::buffer(encode(r)), zmq::send_flags::none);
      const auto reply = receive(dealer, 10s);
      if (!reply) {
        std::fprintf(stderr, "no reply from the worker\n");
        return 1;
      }
      if (const auto* s = std::get_if<status_report>(&*reply)) {
        std::printf("state %s, model %s (%s, %s), device %s, active %u, queued %u, streams %u, uptime %.1f s\n",
                    std::string(to_string(s->state)).c_str(), s->model ? s->model->name.c_str() : "-",
                    s->model ? s->model->architecture.c_str() : "-", s->model ? s->model->quantization.c_str() : "-",
                    s->device.c_str(), s->jobs_active, s->jobs_queued, s->streams, s->uptime_s);
      } else if (const auto* p = std::get_if<pong_reply>(&*reply)) {
        std::printf("pong from %s at %llu\n", p->worker_id.c_str(), static_cast<unsigned long long>(p->time_ms));
      }
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker-orcd-client: %s\n", e.what());
    return 1;
  }
  usage();
  return 2;
}
