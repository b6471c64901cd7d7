// Encoding of every wire message (docs/protocol.md §3-§5) and the spelling of the protocol's enums.
#include "protocol/codec.hpp"
#include "protocol/msgpack_io.hpp"

namespace worker::protocol {
namespace {

using detail::map_writer;

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

map_writer head(std::string_view kind) {
  map_writer w;
  w.uint("v", k_protocol_version).str("kind", kind);
  return w;
}

std::string encode_timings(const job_timings& t) {
  map_writer w;
  w.real("queue_ms", t.queue_ms)
      .real("prefill_ms", t.prefill_ms)
      .real("decode_ms", t.decode_ms)
      .real("total_ms", t.total_ms)
      .real("decode_tokens_per_s", t.decode_tokens_per_s);
  return w.finish();
}

std::string encode_model(const std::optional<model_info>& m) {
  map_writer w;
  if (m) {
    w.str("name", m->name)
        .str("architecture", m->architecture)
        .str("quantization", m->quantization)
        .uint("vocab_size", m->vocab_size)
        .uint("context_length", m->context_length)
        .uint("weight_bytes", m->weight_bytes);
  }
  return w.finish();
}

void status_fields(map_writer& w, const status_report& s) {
  w.opt_str("request_id", s.request_id)
      .str("worker_id", s.worker_id)
      .str("version", s.version)
      .uint("protocol", k_protocol_version)
      .str("state", to_string(s.state))
      .raw("model", encode_model(s.model))
      .str("device", s.device)
      .boolean("resident", s.resident)
      .uint("vram_used", s.vram_used)
      .uint("vram_total", s.vram_total)
      .uint("vram_engine", s.vram_engine)
      .uint("residency_checked_ms", s.residency_checked_ms)
      .uint("jobs_active", s.jobs_active)
      .uint("jobs_queued", s.jobs_queued)
      .uint("streams", s.streams)
      .real("uptime_s", s.uptime_s);
}

std::string encode_value(const narration_value& v) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  std::visit(overloaded{
                 [&](bool b) { b ? pk.pack_true() : pk.pack_false(); },
                 [&](std::int64_t i) { pk.pack_int64(i); },
                 [&](double d) { pk.pack_double(d); },
                 [&](const std::string& s) {
                   pk.pack_str(static_cast<std::uint32_t>(s.size()));
                   pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
                 },
             },
             v);
  return {buf.data(), buf.size()};
}

}  // namespace

std::string encode(const reply& message) {
  return std::visit(
      overloaded{
          [](const accepted_reply& r) {
            auto w = head("accepted");
            w.str("job_id", r.job_id).str("correlation_id", r.correlation_id).uint("queue_position", r.queue_position);
            return w.finish();
          },
          [](const started_reply& r) {
            auto w = head("started");
            w.str("job_id", r.job_id)
                .str("correlation_id", r.correlation_id)
                .uint("prompt_tokens", r.prompt_tokens)
                .uint("max_tokens", r.max_tokens)
                .uint("seed", r.seed)
                .uint("stream", r.stream);
            return w.finish();
          },
          [](const token_reply& r) {
            auto w = head("token");
            w.str("job_id", r.job_id)
                .str("correlation_id", r.correlation_id)
                .uint("index", r.index)
                .int_array("token_ids", r.token_ids)
                .str("text", r.text)
                .opt_str("channel", r.channel);
            return w.finish();
          },
          [](const end_reply& r) {
            auto w = head("end");
            w.str("job_id", r.job_id).str("correlation_id", r.correlation_id).str("stop_reason", to_string(r.reason));
            if (r.reason == stop_reason::stop_sequence) w.opt_str("stop_sequence", r.stop_sequence);
            w.uint("tokens_in", r.tokens_in)
                .uint("tokens_out", r.tokens_out)
                .uint("seed", r.seed)
                .raw("timings", encode_timings(r.timings));
            return w.finish();
          },
          [](const error_reply& r) {
            auto w = head("error");
            w.str_or_nil("job_id", r.job_id).str_or_nil("correlation_id", r.correlation_id).opt_str("request_id", r.request_id);
            w.str("code", to_string(r.code)).str("message", r.message).boolean("retriable", r.retriable);
            if (!r.fields.empty()) {
              std::vector<std::string> fields;
              for (const auto& f : r.fields) {
                map_writer fw;
                fw.str("field", f.field).str("problem", f.problem);
                fields.push_back(fw.finish());
              }
              w.raw_array("fields", fields);
            }
            return w.finish();
          },
          [](const cancel_ack& r) {
            auto w = head("cancel_ack");
            w.str("job_id", r.job_id).opt_str("request_id", r.request_id).str("state", to_string(r.state));
            return w.finish();
          },
          [](const status_report& r) {
            auto w = head("status");
            status_fields(w, r);
            return w.finish();
          },
          [](const pong_reply& r) {
            auto w = head("pong");
            w.opt_str("request_id", r.request_id).str("worker_id", r.worker_id).uint("time_ms", r.time_ms);
            return w.finish();
          },
      },
      message);
}

std::string encode(const event& message) {
  return std::visit(overloaded{
                        [](const progress_event& p) {
                          auto w = head("progress");
                          w.str("worker_id", p.worker_id)
                              .str("phase", to_string(p.phase))
                              .uint("bytes_done", p.bytes_done)
                              .uint("bytes_total", p.bytes_total)
                              .uint("tensors_done", p.tensors_done)
                              .uint("tensors_total", p.tensors_total)
                              .real("percent", p.percent)
                              .real("rate_mb_s", p.rate_mb_s)
                              .real("elapsed_ms", p.elapsed_ms);
                          return w.finish();
                        },
                        [](const narration_event& n) {
                          auto w = head("narration");
                          w.str("worker_id", n.worker_id)
                              .str("actor", n.actor)
                              .str("action", n.action)
                              .str("target", n.target)
                              .str("human", n.human)
                              .str_or_nil("correlation_id", n.correlation_id)
                              .str_or_nil("job_id", n.job_id)
                              .uint("time_ms", n.time_ms);
                          map_writer fw;
                          for (const auto& [k, v] : n.fields) fw.raw(k, encode_value(v));
                          w.raw("fields", fw.finish());
                          return w.finish();
                        },
                        [](const status_report& s) {
                          auto w = head("status");
                          status_fields(w, s);
                          return w.finish();
                        },
                    },
                    message);
}

std::string event_topic(const event& message) {
  return std::visit(overloaded{
                        [](const progress_event&) { return std::string("progress/"); },
                        [](const narration_event& n) {
                          return "narration/" + (n.job_id ? *n.job_id : std::string("-")) + "/";
                        },
                        [](const status_report&) { return std::string("status/"); },
                    },
                    message);
}

std::string encode(const request& message) {
  return std::visit(
      overloaded{
          [](const submit_request& r) {
            auto w = head("submit");
            w.str("job_id", r.job_id);
            if (r.prompt) {
              w.str("prompt", *r.prompt);
            } else {
              std::vector<std::string> msgs;
              for (const auto& m : r.messages) {
                map_writer mw;
                mw.str("role", to_string(m.role)).str("content", m.content);
                msgs.push_back(mw.finish());
              }
              w.raw_array("messages", msgs);
              w.opt_str("assistant_prefill", r.assistant_prefill);
              w.str("reasoning_effort", to_string(r.effort));
              w.opt_str("date", r.date);
            }
            const auto& s = r.sampling;
            w.uint("max_tokens", s.max_tokens)
                .real("temperature", s.temperature)
                .uint("top_k", s.top_k)
                .real("top_p", s.top_p)
                .real("min_p", s.min_p)
                .real("repetition_penalty", s.repetition_penalty)
                .real("presence_penalty", s.presence_penalty)
                .real("frequency_penalty", s.frequency_penalty);
            if (s.seed) w.uint("seed", *s.seed);
            if (!s.stop.empty()) w.str_array("stop", s.stop);
            w.opt_str("correlation_id", r.correlation_id);
            if (r.deadline_ms) w.uint("deadline_ms", *r.deadline_ms);
            return w.finish();
          },
          [](const cancel_request& r) {
            auto w = head("cancel");
            w.str("job_id", r.job_id).opt_str("request_id", r.request_id);
            return w.finish();
          },
          [](const status_request& r) {
            auto w = head("status");
            w.opt_str("request_id", r.request_id);
            return w.finish();
          },
          [](const ping_request& r) {
            auto w = head("ping");
            w.opt_str("request_id", r.request_id);
            return w.finish();
          },
      },
      message);
}

std::string_view to_string(chat_role role) {
  switch (role) {
    case chat_role::system: return "system";
    case chat_role::developer: return "developer";
    case chat_role::user: return "user";
    case chat_role::assistant: return "assistant";
  }
  return "user";
}

std::string_view to_string(reasoning_effort effort) {
  switch (effort) {
    case reasoning_effort::low: return "low";
    case reasoning_effort::medium: return "medium";
    case reasoning_effort::high: return "high";
  }
  return "medium";
}

std::string_view to_string(stop_reason reason) {
  switch (reason) {
    case stop_reason::max_tokens: return "max_tokens";
    case stop_reason::eos: return "eos";
    case stop_reason::stop_sequence: return "stop_sequence";
  }
  return "max_tokens";
}

std::string_view to_string(cancel_state state) {
  switch (state) {
    case cancel_state::cancelling: return "cancelling";
    case cancel_state::finished: return "finished";
    case cancel_state::unknown: return "unknown";
  }
  return "unknown";
}

std::string_view to_string(worker_state state) {
  switch (state) {
    case worker_state::loading: return "loading";
    case worker_state::ready: return "ready";
    case worker_state::draining: return "draining";
  }
  return "loading";
}

std::string_view to_string(load_phase phase) {
  switch (phase) {
    case load_phase::open: return "open";
    case load_phase::weights: return "weights";
    case load_phase::ready: return "ready";
    case load_phase::failed: return "failed";
  }
  return "open";
}

}  // namespace worker::protocol
