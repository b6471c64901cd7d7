// Test support (see test_worker.hpp).
#include "tests/actors/support/test_worker.hpp"

#include <zmq_addon.hpp>

#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "model/chat/chat_format.hpp"
#include "tests/support/cached_synth.hpp"
#include "model/tokenizer/stream_decoder.hpp"

namespace worker::test {

namespace {

std::filesystem::path synth_model(const char* env_name, const std::filesystem::path& path, const char* preset,
                                  const char* tokenizer) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  if (const char* env = std::getenv(env_name); env != nullptr && *env != '\0') return env;
  return cached_synth_model(path, preset, "", tokenizer, 0);
}

}  // namespace

std::filesystem::path tiny_model_path() {
  return synth_model("WORKER_ORCD_TINY_QWEN2", WORKER_TEST_TINY_MODEL, "tiny-qwen2", WORKER_TEST_QWEN_TOKENIZER);
}

std::filesystem::path tiny_gpt_oss_path() {
  return synth_model("WORKER_ORCD_TINY_GPT_OSS", WORKER_TEST_TINY_GPT_OSS, "tiny-gpt-oss", WORKER_TEST_GPT_OSS_TOKENIZER);
}

actors::worker_options tiny_worker_options() { return loopback_worker_options(tiny_model_path(), "cpu"); }

adapters::generation_request reference_request(const actors::model_bundle& model, const protocol::submit_request& s) {
  adapters::generation_request r;
  std::vector<model::token_id> ids;
  if (s.prompt) {
    ids = model.tokenizer.encode(*s.prompt);
  } else {
    model::chat_request chat;
    for (const auto& m : s.messages) {
      chat.messages.push_back({*model::chat_role_from_string(protocol::to_string(m.role)), m.content});
    }
    chat.assistant_prefill = s.assistant_prefill;
    ids = model::chat_render(model.tokenizer, model.chat.value_or(model::chat_format_kind::chatml), chat).ids;
  }
  r.prompt.assign(ids.begin(), ids.end());
  r.sampling.temperature = s.sampling.temperature;
  r.sampling.top_k = s.sampling.top_k;
  r.sampling.top_p = s.sampling.top_p;
  r.sampling.min_p = s.sampling.min_p;
  r.sampling.repetition_penalty = s.sampling.repetition_penalty;
  r.sampling.presence_penalty = s.sampling.presence_penalty;
  r.sampling.frequency_penalty = s.sampling.frequency_penalty;
  r.sampling.seed = s.sampling.seed.value();
  r.max_tokens = s.sampling.max_tokens;
  r.eog_tokens = model.eog;
  r.stop_strings = s.sampling.stop;
  return r;
}

actors::worker_options loopback_worker_options(std::filesystem::path model, std::string device) {
  actors::worker_options o;
  o.load.model = std::move(model);
  o.load.device = std::move(device);
  o.load.max_context = 512;
  o.sockets.listen = "tcp://127.0.0.1:*";
  o.sockets.events = "tcp://127.0.0.1:*";
  o.worker_id = "test-worker";
  o.version = "test";
  o.status_interval = 200ms;
  o.drain = 2000ms;
  return o;
}

zmq::context_t& test_context() {
  static zmq::context_t ctx{1};
  return ctx;
}

test_worker::test_worker(actors::worker_options options, bool wait) {
  service_ = std::make_unique<actors::worker_service>(std::move(options));
  if (wait) {
    start();
    wait_ready();
  }
}

test_worker::~test_worker() {
  if (!stopped_) stop();
}

void test_worker::start() { service_->start(); }

void test_worker::wait_ready(ms timeout) {
  test_client c(listen());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto r = c.ask(protocol::status_request{}, 10s);
    if (const auto* s = std::get_if<protocol::status_report>(&r); s && s->state == protocol::worker_state::ready) return;
    std::this_thread::sleep_for(20ms);
  }
  throw std::runtime_error("the worker did not become ready");
}

int test_worker::stop() {
  stopped_ = true;
  service_->shutdown();
  return service_->wait();
}

test_client::test_client(const std::string& endpoint, std::string routing_id)
    : socket_(test_context(), zmq::socket_type::dealer) {
  socket_.set(zmq::sockopt::linger, 0);
  if (!routing_id.empty()) socket_.set(zmq::sockopt::routing_id, routing_id);
  socket_.connect(endpoint);
}

void test_client::send(const protocol::request& r) { send_body(protocol::encode(r)); }

void test_client::send_body(const std::string& body) { socket_.send(zmq::buffer(body), zmq::send_flags::none); }

void test_client::send_frames(const std::vector<std::string>& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    socket_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

std::optional<protocol::reply> test_client::recv(ms timeout) {
  if (!pending_.empty()) {
    auto r = std::move(pending_.front());
    pending_.erase(pending_.begin());
    return r;
  }
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) == 0) return std::nullopt;
  std::vector<zmq::message_t> frames;
  if (!zmq::recv_multipart(socket_, std::back_inserter(frames))) return std::nullopt;
  if (frames.size() != 1) throw std::runtime_error("reply with " + std::to_string(frames.size()) + " frames");
  return protocol::decode_reply(frames[0].to_string_view());
}

std::optional<protocol::reply> test_client::take_pending(const std::function<bool(const protocol::reply&)>& pred) {
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (pred(*it)) {
      auto r = std::move(*it);
      pending_.erase(it);
      return r;
    }
  }
  return std::nullopt;
}

std::vector<protocol::reply> test_client::until_terminal(const std::string& job_id, ms timeout) {
  std::vector<protocol::reply> out;
  auto mine = [&](const protocol::reply& r) {
    const auto* j = job_of(r);
    return j != nullptr && *j == job_id;
  };
  while (auto r = take_pending(mine)) {
    out.push_back(std::move(*r));
    if (is_terminal(out.back())) return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<ms>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) throw std::runtime_error("no terminal reply for " + job_id);
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, left) == 0) continue;
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket_, std::back_inserter(frames))) continue;
    auto r = protocol::decode_reply(frames.at(0).to_string_view());
    if (!mine(r)) {
      pending_.push_back(std::move(r));
      continue;
    }
    out.push_back(std::move(r));
    if (is_terminal(out.back())) return out;
  }
}

protocol::reply test_client::ask(const protocol::request& r, ms timeout) {
  send(r);
  auto reply = recv(timeout);
  if (!reply) throw std::runtime_error("no reply within the timeout");
  return std::move(*reply);
}

event_listener::event_listener(const std::string& endpoint, const std::vector<std::string>& topics)
    : socket_(test_context(), zmq::socket_type::sub) {
  socket_.set(zmq::sockopt::linger, 0);
  for (const auto& t : topics) socket_.set(zmq::sockopt::subscribe, t);
  socket_.connect(endpoint);
}

std::vector<std::pair<std::string, protocol::event>> event_listener::collect(
    ms timeout, const std::function<bool(const protocol::event&)>& done) {
  std::vector<std::pair<std::string, protocol::event>> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<ms>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, left) == 0) continue;
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(socket_, std::back_inserter(frames))) continue;
    if (frames.size() != 2) throw std::runtime_error("event with " + std::to_string(frames.size()) + " frames");
    out.emplace_back(frames[0].to_string(), protocol::decode_event(frames[1].to_string_view()));
    if (done && done(out.back().second)) return out;
  }
}

protocol::submit_request prompt_job(std::string job_id, std::string prompt, std::uint32_t max_tokens,
                                    std::uint64_t seed, float temperature) {
  protocol::submit_request s;
  s.job_id = std::move(job_id);
  s.prompt = std::move(prompt);
  s.sampling.max_tokens = max_tokens;
  s.sampling.seed = seed;
  s.sampling.temperature = temperature;
  return s;
}

std::string as_wire_text(std::string_view raw) {
  std::string rest;
  std::string out = model::utf8_take_complete(raw, rest);
  if (!rest.empty()) out += "\xEF\xBF\xBD";
  return out;
}

std::string numbered(std::string prefix, long long n) {
  prefix += std::to_string(n);
  return prefix;
}

std::string kind_of(const protocol::reply& r) {
  static constexpr const char* names[] = {"accepted", "started", "token", "end", "error", "cancel_ack", "status", "pong"};
  return names[r.index()];
}

const std::string* job_of(const protocol::reply& r) {
  return std::visit(
      [](const auto& x) -> const std::string* {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, protocol::error_reply>) {
          return x.job_id ? &*x.job_id : nullptr;
        } else if constexpr (std::is_same_v<T, protocol::status_report> || std::is_same_v<T, protocol::pong_reply> ||
                             std::is_same_v<T, protocol::cancel_ack>) {
          return nullptr;
        } else {
          return &x.job_id;
        }
      },
      r);
}

bool is_terminal(const protocol::reply& r) {
  return std::holds_alternative<protocol::end_reply>(r) || std::holds_alternative<protocol::error_reply>(r);
}

}  // namespace worker::test
