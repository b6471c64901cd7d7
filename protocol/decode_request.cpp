// Worker-side decoding and validation of client requests (docs/protocol.md §2-§3). Hostile input never
// throws out of here: parse errors, wrong types and out-of-range values all become an error_reply, and
// validation collects every bad field before answering.
#include <cmath>
#include <cstdio>
#include <new>

#include "protocol/codec.hpp"
#include "protocol/msgpack_io.hpp"
#include "protocol/utf8.hpp"

namespace worker::protocol {
namespace {

using detail::as_view;
using detail::map_view;

bool is_job_id(std::string_view s) {
  if (s.empty()) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(s[0])) return false;
  for (char c : s) {
    if (!alnum(c) && c != '.' && c != '_' && c != ':' && c != '-') return false;
  }
  return true;
}

bool is_printable_ascii(std::string_view s) {
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

bool is_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  const int month = (s[5] - '0') * 10 + (s[6] - '0');
  const int day = (s[8] - '0') * 10 + (s[9] - '0');
  return month >= 1 && month <= 12 && day >= 1 && day <= 31;
}

std::string fmt_num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// Collects field problems while reading typed values out of a map.
class checker {
 public:
  explicit checker(const limits& lim) : lim_(lim) {}

  void add(std::string field, std::string problem) {
    problems_.push_back({std::move(field), std::move(problem)});
  }
  std::vector<field_problem>& problems() { return problems_; }

  // A UTF-8 string of min..max bytes.
  std::optional<std::string> str(const msgpack::object* o, const std::string& field, bool required,
                                 std::size_t min_bytes, std::size_t max_bytes) {
    if (o == nullptr) {
      if (required) add(field, "is required");
      return std::nullopt;
    }
    if (o->type != msgpack::type::STR) {
      add(field, "must be a string");
      return std::nullopt;
    }
    const auto v = as_view(*o);
    if (auto bad = find_invalid_utf8(v)) {
      add(field, "is not valid UTF-8 (byte " + std::to_string(*bad) + ")");
      return std::nullopt;
    }
    if (v.size() < min_bytes || v.size() > max_bytes) {
      add(field, "must be " + std::to_string(min_bytes) + "-" + std::to_string(max_bytes) + " bytes");
      return std::nullopt;
    }
    return std::string(v);
  }

  // An identifier: job_id (strict charset) or correlation/request id (printable ASCII).
  std::optional<std::string> id(const msgpack::object* o, const std::string& field, bool required, bool job) {
    auto v = str(o, field, required, 1, lim_.max_id_bytes);
    if (!v) return std::nullopt;
    if (job && !is_job_id(*v)) {
      add(field, "must match [A-Za-z0-9][A-Za-z0-9._:-]*");
      return std::nullopt;
    }
    if (!job && !is_printable_ascii(*v)) {
      add(field, "must be printable ASCII without spaces");
      return std::nullopt;
    }
    return v;
  }

  std::optional<std::uint64_t> uint(const msgpack::object* o, const std::string& field, std::uint64_t lo,
                                    std::uint64_t hi) {
    if (o == nullptr) return std::nullopt;
    const std::string range = "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    if (o->type == msgpack::type::NEGATIVE_INTEGER) {
      add(field, range);
      return std::nullopt;
    }
    if (o->type != msgpack::type::POSITIVE_INTEGER) {
      add(field, "must be an integer");
      return std::nullopt;
    }
    const std::uint64_t v = o->via.u64;
    if (v < lo || v > hi) {
      add(field, range);
      return std::nullopt;
    }
    return v;
  }

  // A finite number in the interval lo..hi, each end open or closed.
  std::optional<double> real(const msgpack::object* o, const std::string& field, double lo, bool lo_open,
                             double hi, bool hi_open) {
    if (o == nullptr) return std::nullopt;
    double v = 0;
    switch (o->type) {
      case msgpack::type::POSITIVE_INTEGER: v = static_cast<double>(o->via.u64); break;
      case msgpack::type::NEGATIVE_INTEGER: v = static_cast<double>(o->via.i64); break;
      case msgpack::type::FLOAT32:
      case msgpack::type::FLOAT64: v = o->via.f64; break;
      default: add(field, "must be a number"); return std::nullopt;
    }
    const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok) {
      add(field, std::string("must be in ") + (lo_open ? "(" : "[") + fmt_num(lo) + ", " + fmt_num(hi) +
                     (hi_open ? ")" : "]"));
      return std::nullopt;
    }
    return v;
  }

  const limits& lim() const { return lim_; }

 private:
  const limits& lim_;
  std::vector<field_problem> problems_;
};

std::optional<chat_role> parse_role(std::string_view s) {
  if (s == "system") return chat_role::system;
  if (s == "developer") return chat_role::developer;
  if (s == "user") return chat_role::user;
  if (s == "assistant") return chat_role::assistant;
  return std::nullopt;
}

void read_messages(const msgpack::object& o, checker& c, submit_request& out, std::size_t& content_bytes) {
  if (o.type != msgpack::type::ARRAY) {
    c.add("messages", "must be an array of {role, content} maps");
    return;
  }
  const auto n = o.via.array.size;
  if (n == 0 || n > c.lim().max_messages) {
    c.add("messages", "must hold 1-" + std::to_string(c.lim().max_messages) + " messages");
    return;
  }
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::string prefix = "messages[" + std::to_string(i) + "]";
    const map_view m(o.via.array.ptr[i]);
    if (!m.ok()) {
      c.add(prefix, "must be a map with string keys {role, content}");
      continue;
    }
    chat_message msg;
    if (auto role = c.str(m.find("role"), prefix + ".role", true, 1, 32)) {
      if (auto r = parse_role(*role)) {
        msg.role = *r;
      } else {
        c.add(prefix + ".role", "must be system, developer, user or assistant");
      }
    }
    if (auto content = c.str(m.find("content"), prefix + ".content", true, 0, c.lim().max_prompt_bytes)) {
      content_bytes += content->size();
      msg.content = std::move(*content);
    }
    out.messages.push_back(std::move(msg));
  }
}

void read_submit(const map_view& m, checker& c, submit_request& out) {
  const auto& lim = c.lim();
  if (auto v = c.id(m.find("job_id"), "job_id", true, true)) out.job_id = std::move(*v);
  out.correlation_id = c.id(m.find("correlation_id"), "correlation_id", false, false);

  const auto* prompt = m.find("prompt");
  const auto* messages = m.find("messages");
  if (prompt != nullptr && messages != nullptr) {
    c.add("prompt", "give either prompt or messages, not both");
  } else if (prompt == nullptr && messages == nullptr) {
    c.add("prompt", "one of prompt or messages is required");
  } else if (prompt != nullptr) {
    if (m.find("assistant_prefill") != nullptr) c.add("assistant_prefill", "only applies to messages");
    out.prompt = c.str(prompt, "prompt", true, 0, lim.max_prompt_bytes);
    if (!out.prompt) out.prompt = std::string();  // keep "it was a prompt request" for error context
  } else {
    std::size_t content_bytes = 0;
    read_messages(*messages, c, out, content_bytes);
    out.assistant_prefill = c.str(m.find("assistant_prefill"), "assistant_prefill", false, 0, lim.max_prompt_bytes);
    if (out.assistant_prefill) content_bytes += out.assistant_prefill->size();
    if (content_bytes > lim.max_prompt_bytes) {
      c.add("messages", "contents total " + std::to_string(content_bytes) + " bytes, above " +
                            std::to_string(lim.max_prompt_bytes));
    }
  }

  if (auto effort = c.str(m.find("reasoning_effort"), "reasoning_effort", false, 1, 16)) {
    if (*effort == "low") {
      out.effort = reasoning_effort::low;
    } else if (*effort == "medium") {
      out.effort = reasoning_effort::medium;
    } else if (*effort == "high") {
      out.effort = reasoning_effort::high;
    } else {
      c.add("reasoning_effort", "must be low, medium or high");
    }
  }
  if (auto date = c.str(m.find("date"), "date", false, 1, 32)) {
    if (is_date(*date)) {
      out.date = std::move(*date);
    } else {
      c.add("date", "must be YYYY-MM-DD");
    }
  }

  auto& s = out.sampling;
  if (auto v = c.uint(m.find("max_tokens"), "max_tokens", 1, lim.max_tokens)) s.max_tokens = static_cast<std::uint32_t>(*v);
  if (auto v = c.real(m.find("temperature"), "temperature", 0, false, 2, false)) s.temperature = static_cast<float>(*v);
  if (auto v = c.uint(m.find("top_k"), "top_k", 0, lim.max_top_k)) s.top_k = static_cast<std::uint32_t>(*v);
  if (auto v = c.real(m.find("top_p"), "top_p", 0, true, 1, false)) s.top_p = static_cast<float>(*v);
  if (auto v = c.real(m.find("min_p"), "min_p", 0, false, 1, false)) s.min_p = static_cast<float>(*v);
  if (auto v = c.real(m.find("repetition_penalty"), "repetition_penalty", 0, true, 10, false)) {
    s.repetition_penalty = static_cast<float>(*v);
  }
  if (auto v = c.real(m.find("presence_penalty"), "presence_penalty", -2, false, 2, false)) {
    s.presence_penalty = static_cast<float>(*v);
  }
  if (auto v = c.real(m.find("frequency_penalty"), "frequency_penalty", -2, false, 2, false)) {
    s.frequency_penalty = static_cast<float>(*v);
  }
  s.seed = c.uint(m.find("seed"), "seed", 0, UINT64_MAX);
  if (const auto* stop = m.find("stop")) {
    if (stop->type != msgpack::type::ARRAY) {
      c.add("stop", "must be an array of strings");
    } else if (stop->via.array.size > lim.max_stop_strings) {
      c.add("stop", "must hold at most " + std::to_string(lim.max_stop_strings) + " strings");
    } else {
      for (std::uint32_t i = 0; i < stop->via.array.size; ++i) {
        auto v = c.str(&stop->via.array.ptr[i], "stop[" + std::to_string(i) + "]", true, 1, lim.max_stop_bytes);
        if (v) s.stop.push_back(std::move(*v));
      }
    }
  }
  out.deadline_ms = c.uint(m.find("deadline_ms"), "deadline_ms", 1, lim.max_deadline_ms);
}

// Best-effort echo of identifiers into an error reply: only values that are themselves valid.
void echo_ids(const map_view& m, const limits& lim, error_reply& e) {
  checker quiet(lim);
  e.job_id = quiet.id(m.find("job_id"), "job_id", false, true);
  e.correlation_id = quiet.id(m.find("correlation_id"), "correlation_id", false, false);
  e.request_id = quiet.id(m.find("request_id"), "request_id", false, false);
}

error_reply invalid(std::string message, std::vector<field_problem> fields = {}) {
  auto e = make_error(error_code::invalid_request, std::move(message));
  e.fields = std::move(fields);
  return e;
}

decode_result decode_map(const msgpack::object& root, const limits& lim) {
  const map_view m(root);
  if (!m.ok()) return invalid(m.problem());

  error_reply refusal;
  echo_ids(m, lim, refusal);
  auto refuse = [&](error_reply e) {
    e.job_id = refusal.job_id;
    e.correlation_id = refusal.correlation_id;
    e.request_id = refusal.request_id;
    return e;
  };

  // The version decides how to read everything else, so it is checked first.
  const auto* v = m.find("v");
  if (v == nullptr) return refuse(invalid("field v (protocol version) is required", {{"v", "is required"}}));
  if (v->type != msgpack::type::POSITIVE_INTEGER) {
    return refuse(invalid("field v must be an unsigned integer", {{"v", "must be an unsigned integer"}}));
  }
  if (v->via.u64 != k_protocol_version) {
    return refuse(make_error(error_code::unsupported_version,
                             "protocol version " + std::to_string(v->via.u64) + " is not supported; supported: 1"));
  }
  const auto* kind = m.find("kind");
  if (kind == nullptr) return refuse(invalid("field kind is required", {{"kind", "is required"}}));
  if (kind->type != msgpack::type::STR) return refuse(invalid("field kind must be a string", {{"kind", "must be a string"}}));
  const auto k = as_view(*kind);

  checker c(lim);
  request out;
  if (k == "submit") {
    submit_request s;
    read_submit(m, c, s);
    out = std::move(s);
  } else if (k == "cancel") {
    cancel_request s;
    if (auto id = c.id(m.find("job_id"), "job_id", true, true)) s.job_id = std::move(*id);
    s.request_id = c.id(m.find("request_id"), "request_id", false, false);
    out = std::move(s);
  } else if (k == "status") {
    out = status_request{c.id(m.find("request_id"), "request_id", false, false)};
  } else if (k == "ping") {
    out = ping_request{c.id(m.find("request_id"), "request_id", false, false)};
  } else {
    std::string shown(k.substr(0, 32));
    if (!is_printable_ascii(shown)) shown = "(not printable)";
    return refuse(make_error(error_code::unknown_kind,
                             "unknown message kind '" + shown + "'; expected submit, cancel, status or ping"));
  }
  if (!c.problems().empty()) {
    std::string message = std::to_string(c.problems().size()) + " invalid field(s):";
    for (const auto& p : c.problems()) message += " " + p.field;
    return refuse(invalid(std::move(message), std::move(c.problems())));
  }
  return out;
}

}  // namespace

error_reply make_error(error_code code, std::string message) {
  error_reply e;
  e.code = code;
  e.message = std::move(message);
  e.retriable = is_retriable(code);
  return e;
}

decode_result decode_request(std::string_view body, const limits& lim) {
  if (body.size() > lim.max_message_bytes) {
    return make_error(error_code::message_too_large, "message of " + std::to_string(body.size()) +
                                                         " bytes is above the limit of " +
                                                         std::to_string(lim.max_message_bytes));
  }
  // The limits bound what the parser allocates: without them a 5-byte array32 header asks for ~96 GiB.
  const msgpack::unpack_limit unpack_lim(lim.unpack_max_array, lim.unpack_max_map, lim.max_message_bytes,
                                         lim.max_message_bytes, 0, lim.unpack_max_depth);
  try {
    std::size_t offset = 0;
    const msgpack::object_handle oh =
        msgpack::unpack(body.data(), body.size(), offset, nullptr, nullptr, unpack_lim);
    if (offset != body.size()) {
      return invalid("malformed msgpack: " + std::to_string(body.size() - offset) + " trailing bytes after the body");
    }
    return decode_map(oh.get(), lim);
  } catch (const msgpack::insufficient_bytes&) {
    return invalid("malformed msgpack: truncated body");
  } catch (const msgpack::size_overflow& e) {
    return invalid(std::string("malformed msgpack: a size limit was exceeded (") + e.what() + ")");
  } catch (const msgpack::unpack_error& e) {
    return invalid(std::string("malformed msgpack: ") + e.what());
  } catch (const msgpack::type_error&) {
    return invalid("malformed msgpack: unexpected type");
  } catch (const std::bad_alloc&) {
    return invalid("malformed msgpack: body too large to decode");
  }
}

}  // namespace worker::protocol
