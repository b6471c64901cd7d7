// Client-side decoding of worker replies and events (docs/protocol.md §4-§5), used by the C++ example
// client and the tests. Strict: a missing or mistyped field throws protocol_error naming it, so a test
// that decodes a reply also checks the worker's encoding.
#include <cmath>

#include "protocol/codec.hpp"
#include "protocol/msgpack_io.hpp"

namespace worker::protocol {
namespace {

using detail::as_view;
using detail::map_view;

[[noreturn]] void fail(const std::string& what) { throw protocol_error(what); }

// Throwing typed accessors over one map.
class reader {
 public:
  reader(const msgpack::object& o, std::string where) : m_(o), where_(std::move(where)) {
    if (!m_.ok()) fail(where_ + ": " + m_.problem());
  }

  const msgpack::object& need(std::string_view key) const {
    const auto* o = m_.find(key);
    if (o == nullptr) fail(where_ + ": missing field " + std::string(key));
    return *o;
  }
  bool has(std::string_view key) const { return m_.find(key) != nullptr; }

  std::string str(std::string_view key) const {
    const auto& o = need(key);
    if (o.type != msgpack::type::STR) fail(where_ + ": field " + std::string(key) + " is not a string");
    return std::string(as_view(o));
  }
  std::optional<std::string> opt_str(std::string_view key) const {
    if (!has(key)) return std::nullopt;
    return str(key);
  }
  std::uint64_t uint(std::string_view key) const {
    const auto& o = need(key);
    if (o.type != msgpack::type::POSITIVE_INTEGER) fail(where_ + ": field " + std::string(key) + " is not an unsigned integer");
    return o.via.u64;
  }
  std::uint32_t u32(std::string_view key) const {
    const auto v = uint(key);
    if (v > UINT32_MAX) fail(where_ + ": field " + std::string(key) + " is out of range");
    return static_cast<std::uint32_t>(v);
  }
  double real(std::string_view key) const {
    const auto& o = need(key);
    switch (o.type) {
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64: return o.via.f64;
      case msgpack::type::POSITIVE_INTEGER: return static_cast<double>(o.via.u64);
      case msgpack::type::NEGATIVE_INTEGER: return static_cast<double>(o.via.i64);
      default: fail(where_ + ": field " + std::string(key) + " is not a number");
    }
  }
  bool boolean(std::string_view key) const {
    const auto& o = need(key);
    if (o.type != msgpack::type::BOOLEAN) fail(where_ + ": field " + std::string(key) + " is not a boolean");
    return o.via.boolean;
  }
  const msgpack::object& array(std::string_view key) const {
    const auto& o = need(key);
    if (o.type != msgpack::type::ARRAY) fail(where_ + ": field " + std::string(key) + " is not an array");
    return o;
  }
  reader sub(std::string_view key) const { return reader(need(key), where_ + "." + std::string(key)); }
  const map_view& view() const { return m_; }

 private:
  map_view m_;
  std::string where_;
};

template <class E, std::size_t N>
E parse_enum(const std::string& text, const std::pair<std::string_view, E> (&names)[N], const std::string& what) {
  for (const auto& [name, value] : names) {
    if (name == text) return value;
  }
  fail(what + ": unknown value '" + text + "'");
}

worker_state parse_state(const std::string& s) {
  static constexpr std::pair<std::string_view, worker_state> names[] = {
      {"loading", worker_state::loading}, {"ready", worker_state::ready}, {"draining", worker_state::draining}};
  return parse_enum(s, names, "status.state");
}

status_report read_status(const reader& r) {
  status_report s;
  s.request_id = r.opt_str("request_id");
  s.worker_id = r.str("worker_id");
  s.version = r.str("version");
  if (r.uint("protocol") != k_protocol_version) fail("status: unexpected protocol version");
  s.state = parse_state(r.str("state"));
  const auto model = r.sub("model");
  if (model.has("name")) {
    model_info m;
    m.name = model.str("name");
    m.architecture = model.str("architecture");
    m.quantization = model.str("quantization");
    m.vocab_size = model.u32("vocab_size");
    m.context_length = model.u32("context_length");
    m.weight_bytes = model.uint("weight_bytes");
    s.model = std::move(m);
  }
  s.device = r.str("device");
  s.resident = r.boolean("resident");
  s.vram_used = r.uint("vram_used");
  s.vram_total = r.uint("vram_total");
  // Added after the first release of version 1: absent from older workers.
  if (r.has("vram_engine")) s.vram_engine = r.uint("vram_engine");
  if (r.has("residency_checked_ms")) s.residency_checked_ms = r.uint("residency_checked_ms");
  s.jobs_active = r.u32("jobs_active");
  s.jobs_queued = r.u32("jobs_queued");
  s.streams = r.u32("streams");
  s.uptime_s = r.real("uptime_s");
  return s;
}

msgpack::object_handle parse(std::string_view body) {
  try {
    std::size_t off = 0;
    auto oh = msgpack::unpack(body.data(), body.size(), off, nullptr, nullptr,
                              msgpack::unpack_limit(1u << 20, 1024, 64u << 20, 64u << 20, 0, 8));
    if (off != body.size()) fail("trailing bytes after the body");
    return oh;
  } catch (const msgpack::unpack_error& e) {
    fail(std::string("malformed msgpack: ") + e.what());
  }
}

void check_version(const reader& r) {
  if (r.uint("v") != k_protocol_version) fail("unsupported protocol version");
}

}  // namespace

reply decode_reply(std::string_view body) {
  const auto oh = parse(body);
  const reader r(oh.get(), "reply");
  check_version(r);
  const auto kind = r.str("kind");
  if (kind == "accepted") {
    return accepted_reply{r.str("job_id"), r.str("correlation_id"), r.u32("queue_position")};
  }
  if (kind == "started") {
    return started_reply{r.str("job_id"),     r.str("correlation_id"), r.u32("prompt_tokens"),
                         r.u32("max_tokens"), r.uint("seed"),          r.u32("stream")};
  }
  if (kind == "token") {
    token_reply t{r.str("job_id"), r.str("correlation_id"), r.u32("index"), {}, r.str("text"), r.opt_str("channel")};
    const auto& ids = r.array("token_ids");
    for (std::uint32_t i = 0; i < ids.via.array.size; ++i) {
      const auto& o = ids.via.array.ptr[i];
      if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= INT32_MAX) {
        t.token_ids.push_back(static_cast<std::int32_t>(o.via.u64));
      } else {
        fail("token: token_ids must hold non-negative int32 values");
      }
    }
    return t;
  }
  if (kind == "end") {
    end_reply e;
    e.job_id = r.str("job_id");
    e.correlation_id = r.str("correlation_id");
    static constexpr std::pair<std::string_view, stop_reason> names[] = {
        {"max_tokens", stop_reason::max_tokens}, {"eos", stop_reason::eos}, {"stop_sequence", stop_reason::stop_sequence}};
    e.reason = parse_enum(r.str("stop_reason"), names, "end.stop_reason");
    e.stop_sequence = r.opt_str("stop_sequence");
    e.tokens_in = r.u32("tokens_in");
    e.tokens_out = r.u32("tokens_out");
    e.seed = r.uint("seed");
    const auto t = r.sub("timings");
    e.timings = {t.real("queue_ms"), t.real("prefill_ms"), t.real("decode_ms"), t.real("total_ms"),
                 t.real("decode_tokens_per_s")};
    return e;
  }
  if (kind == "error") {
    error_reply e;
    e.job_id = r.opt_str("job_id");
    e.correlation_id = r.opt_str("correlation_id");
    e.request_id = r.opt_str("request_id");
    const auto code = r.str("code");
    const auto parsed = error_code_from_string(code);
    if (!parsed) fail("error: unknown code '" + code + "'");
    e.code = *parsed;
    e.message = r.str("message");
    e.retriable = r.boolean("retriable");
    if (r.has("fields")) {
      const auto& arr = r.array("fields");
      for (std::uint32_t i = 0; i < arr.via.array.size; ++i) {
        const reader f(arr.via.array.ptr[i], "error.fields");
        e.fields.push_back({f.str("field"), f.str("problem")});
      }
    }
    return e;
  }
  if (kind == "cancel_ack") {
    static constexpr std::pair<std::string_view, cancel_state> names[] = {
        {"cancelling", cancel_state::cancelling}, {"finished", cancel_state::finished}, {"unknown", cancel_state::unknown}};
    return cancel_ack{r.str("job_id"), r.opt_str("request_id"), parse_enum(r.str("state"), names, "cancel_ack.state")};
  }
  if (kind == "status") return read_status(r);
  if (kind == "pong") return pong_reply{r.opt_str("request_id"), r.str("worker_id"), r.uint("time_ms")};
  fail("unknown reply kind '" + kind + "'");
}

event decode_event(std::string_view body) {
  const auto oh = parse(body);
  const reader r(oh.get(), "event");
  check_version(r);
  const auto kind = r.str("kind");
  if (kind == "progress") {
    progress_event p;
    p.worker_id = r.str("worker_id");
    static constexpr std::pair<std::string_view, load_phase> names[] = {
        {"open", load_phase::open}, {"weights", load_phase::weights}, {"ready", load_phase::ready}, {"failed", load_phase::failed}};
    p.phase = parse_enum(r.str("phase"), names, "progress.phase");
    p.bytes_done = r.uint("bytes_done");
    p.bytes_total = r.uint("bytes_total");
    p.tensors_done = r.u32("tensors_done");
    p.tensors_total = r.u32("tensors_total");
    p.percent = r.real("percent");
    p.rate_mb_s = r.real("rate_mb_s");
    p.elapsed_ms = r.real("elapsed_ms");
    return p;
  }
  if (kind == "narration") {
    narration_event n;
    n.worker_id = r.str("worker_id");
    n.actor = r.str("actor");
    n.action = r.str("action");
    n.target = r.str("target");
    n.human = r.str("human");
    n.correlation_id = r.opt_str("correlation_id");
    n.job_id = r.opt_str("job_id");
    n.time_ms = r.uint("time_ms");
    const auto& fields = r.need("fields");
    if (fields.type != msgpack::type::MAP) fail("narration: fields is not a map");
    for (std::uint32_t i = 0; i < fields.via.map.size; ++i) {
      const auto& kv = fields.via.map.ptr[i];
      if (kv.key.type != msgpack::type::STR) fail("narration: fields keys must be strings");
      narration_value v;
      switch (kv.val.type) {
        case msgpack::type::BOOLEAN: v = kv.val.via.boolean; break;
        case msgpack::type::POSITIVE_INTEGER: v = static_cast<std::int64_t>(kv.val.via.u64); break;
        case msgpack::type::NEGATIVE_INTEGER: v = kv.val.via.i64; break;
        case msgpack::type::FLOAT32:
        case msgpack::type::FLOAT64: v = kv.val.via.f64; break;
        case msgpack::type::STR: v = std::string(as_view(kv.val)); break;
        default: fail("narration: unsupported field value type");
      }
      n.fields.emplace_back(std::string(as_view(kv.key)), std::move(v));
    }
    return n;
  }
  if (kind == "status") return read_status(r);
  fail("unknown event kind '" + kind + "'");
}

}  // namespace worker::protocol
