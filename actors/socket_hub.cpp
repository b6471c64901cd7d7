// The I/O thread of the ingress (see socket_hub.hpp). ROUTER options (docs/messaging.md §1.1):
// ROUTER_MANDATORY turns a send to a vanished peer into EHOSTUNREACH instead of a silent drop (that is
// how the worker learns a client is gone), ROUTER_HANDOVER lets a client reconnect under the same
// routing id, MAXMSGSIZE bounds what libzmq buffers before we ever parse, and every send uses dontwait
// so that one slow client cannot stall the loop.
#include "actors/socket_hub.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "protocol/codec.hpp"

namespace worker::actors {

namespace {

struct outbound {
  bool publish = false;
  client_route route;  // when !publish
  std::string topic;   // when publish
  std::string body;
};

}  // namespace

struct socket_hub::impl {
  explicit impl(const socket_hub_options& o)
      : options(o), router(context, zmq::socket_type::router), xpub(context, zmq::socket_type::xpub) {
    router.set(zmq::sockopt::router_mandatory, 1);
    router.set(zmq::sockopt::router_handover, 1);
    router.set(zmq::sockopt::maxmsgsize, o.limits.socket_max_message_bytes);
    router.set(zmq::sockopt::sndhwm, o.send_hwm);
    router.set(zmq::sockopt::rcvhwm, o.send_hwm);
    router.set(zmq::sockopt::linger, 0);
    if (o.heartbeat_ms > 0) {
      router.set(zmq::sockopt::heartbeat_ivl, o.heartbeat_ms);
      router.set(zmq::sockopt::heartbeat_timeout, 3 * o.heartbeat_ms);
    }
    xpub.set(zmq::sockopt::xpub_verboser, 1);  // every (un)subscribe reaches us: we count subscribers
    xpub.set(zmq::sockopt::sndhwm, o.send_hwm);
    xpub.set(zmq::sockopt::linger, 0);
    xpub.set(zmq::sockopt::maxmsgsize, std::int64_t{4096});  // subscriptions are short
    bind(router, o.listen, listen_endpoint);
    bind(xpub, o.events, events_endpoint);
    wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) throw std::runtime_error("eventfd failed");
  }

  ~impl() {
    if (wake_fd >= 0) ::close(wake_fd);
  }

  static void bind(zmq::socket_t& s, const std::string& endpoint, std::string& bound) {
    try {
      s.bind(endpoint);
    } catch (const zmq::error_t& e) {
      throw std::runtime_error("cannot bind " + endpoint + ": " + e.what());
    }
    bound = s.get(zmq::sockopt::last_endpoint);
  }

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }

  void enqueue(outbound m) {
    bool was_empty = false;
    {
      std::lock_guard lock(mutex);
      if (stopping_sends) return;
      was_empty = queue.empty();
      queue.push_back(std::move(m));
    }
    if (was_empty) wake();
  }

  // One inbound ROUTER message: [id][body] (DEALER) or [id][""][body] (REQ).
  void handle_inbound(std::vector<zmq::message_t>& frames) {
    const auto received = steady_clock::now();
    if (frames.empty()) return;
    client_route route{frames[0].to_string(), false};
    std::string_view body;
    bool shape_ok = false;
    if (frames.size() == 2) {
      body = frames[1].to_string_view();
      shape_ok = true;
    } else if (frames.size() == 3 && frames[1].size() == 0) {
      route.req_envelope = true;
      body = frames[2].to_string_view();
      shape_ok = true;
    }
    if (!shape_ok) {
      route.req_envelope = frames.size() >= 2 && frames[1].size() == 0;
      refuse(route, protocol::make_error(protocol::error_code::invalid_request,
                                         "expected exactly one body frame (DEALER) or an empty delimiter and one "
                                         "body frame (REQ); got " + std::to_string(frames.size() - 1) + " frames"));
      return;
    }
    auto decoded = protocol::decode_request(body, options.limits);
    if (auto* error = std::get_if<protocol::error_reply>(&decoded)) {
      refuse(route, std::move(*error));
      return;
    }
    if (callbacks.on_request) callbacks.on_request(std::move(route), std::move(std::get<protocol::request>(decoded)), received);
  }

  void refuse(const client_route& route, protocol::error_reply error) {
    send_now(route, protocol::encode(protocol::reply{error}));
    if (callbacks.on_refused) callbacks.on_refused(route, error);
  }

  // Sends on the ROUTER from the I/O thread. EHOSTUNREACH (peer gone) and EAGAIN (its queue is full,
  // send_hwm replies unread) both mean the client can no longer follow its jobs.
  void send_now(const client_route& route, const std::string& body) {
    try {
      const auto flags = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
      if (!router.send(zmq::buffer(route.routing_id), flags)) return client_gone(route.routing_id);
      if (route.req_envelope) router.send(zmq::message_t(), zmq::send_flags::sndmore);
      router.send(zmq::buffer(body), zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      if (e.num() == EHOSTUNREACH) return client_gone(route.routing_id);
      throw;
    }
  }

  void client_gone(const std::string& routing_id) {
    if (callbacks.on_client_gone) callbacks.on_client_gone(routing_id);
  }

  void publish_now(const outbound& m) {
    // PUB semantics: a subscriber whose queue is full misses events; the loop never waits for it.
    if (!xpub.send(zmq::buffer(m.topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return;
    xpub.send(zmq::buffer(m.body), zmq::send_flags::dontwait);
  }

  void drain_subscriptions() {
    for (;;) {
      zmq::message_t m;
      if (!xpub.recv(m, zmq::recv_flags::dontwait)) return;
      if (m.size() == 0) continue;
      const auto first = static_cast<const unsigned char*>(m.data())[0];
      {
        std::lock_guard lock(sub_mutex);
        if (first == 1) ++subscriptions;
        if (first == 0 && subscriptions > 0) --subscriptions;
      }
      sub_cv.notify_all();
    }
  }

  // Returns the number of messages sent.
  std::size_t flush_queue() {
    std::uint64_t counter = 0;
    [[maybe_unused]] auto n = ::read(wake_fd, &counter, sizeof counter);
    std::deque<outbound> batch;
    {
      std::lock_guard lock(mutex);
      batch.swap(queue);
    }
    for (const auto& m : batch) {
      if (m.publish) {
        publish_now(m);
      } else {
        send_now(m.route, m.body);
      }
    }
    return batch.size();
  }

  bool queue_empty() {
    std::lock_guard lock(mutex);
    return queue.empty();
  }

  void run() {
    zmq::pollitem_t items[] = {
        {router.handle(), 0, ZMQ_POLLIN, 0},
        {xpub.handle(), 0, ZMQ_POLLIN, 0},
        {nullptr, wake_fd, ZMQ_POLLIN, 0},
    };
    while (!stop_receiving.load()) {
      zmq::poll(items, 3, std::chrono::milliseconds(100));
      if (items[0].revents & ZMQ_POLLIN) {
        // Bounded burst so that outbound traffic is not starved by a flood of requests.
        for (int i = 0; i < 256; ++i) {
          std::vector<zmq::message_t> frames;
          if (!zmq::recv_multipart(router, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
          handle_inbound(frames);
        }
      }
      if (items[1].revents & ZMQ_POLLIN) drain_subscriptions();
      flush_queue();
    }
    // Stopping: send what is queued (terminal replies of drained jobs) until the deadline.
    const auto deadline = steady_clock::now() + flush_timeout;
    {
      std::lock_guard lock(mutex);
      stopping_sends = true;
    }
    flush_queue();
    // libzmq sends asynchronously; give queued frames time to reach the peers before closing.
    router.set(zmq::sockopt::linger, static_cast<int>(std::max<std::int64_t>(
                                         0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                deadline - steady_clock::now()).count())));
    xpub.set(zmq::sockopt::linger, 200);
    router.close();
    xpub.close();
  }

  socket_hub_options options;
  zmq::context_t context{1};
  zmq::socket_t router;
  zmq::socket_t xpub;
  std::string listen_endpoint;
  std::string events_endpoint;
  int wake_fd = -1;

  socket_hub_callbacks callbacks;
  std::thread thread;
  std::atomic<bool> stop_receiving{false};
  std::chrono::milliseconds flush_timeout{1000};

  std::mutex mutex;  // guards queue, stopping_sends
  std::deque<outbound> queue;
  bool stopping_sends = false;

  mutable std::mutex sub_mutex;
  mutable std::condition_variable sub_cv;
  int subscriptions = 0;
};

socket_hub::socket_hub(const socket_hub_options& options) : impl_(std::make_unique<impl>(options)) {}

socket_hub::~socket_hub() { stop(); }

void socket_hub::start(socket_hub_callbacks callbacks) {
  impl_->callbacks = std::move(callbacks);
  impl_->thread = std::thread([this] { impl_->run(); });
}

void socket_hub::send(const client_route& route, std::string body) {
  impl_->enqueue(outbound{false, route, {}, std::move(body)});
}

void socket_hub::publish(std::string topic, std::string body) {
  impl_->enqueue(outbound{true, {}, std::move(topic), std::move(body)});
}

void socket_hub::stop(std::chrono::milliseconds flush) {
  if (!impl_->thread.joinable()) return;
  impl_->flush_timeout = flush;
  impl_->stop_receiving = true;
  impl_->wake();
  impl_->thread.join();
}

const std::string& socket_hub::listen_endpoint() const { return impl_->listen_endpoint; }
const std::string& socket_hub::events_endpoint() const { return impl_->events_endpoint; }

int socket_hub::subscriptions() const {
  std::lock_guard lock(impl_->sub_mutex);
  return impl_->subscriptions;
}

bool socket_hub::wait_for_subscriber(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->sub_mutex);
  return impl_->sub_cv.wait_for(lock, timeout, [&] { return impl_->subscriptions > 0; });
}

}  // namespace worker::actors
