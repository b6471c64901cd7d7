// Narration events and their log lines (see narration.hpp).
#include "actors/narration.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <variant>

namespace worker::actors {
namespace {

log_format g_format = log_format::text;

bool is_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
         c == '.' || c == '~' || c == '+' || c == '/' || c == '=';
}

bool iequals_at(std::string_view text, std::size_t at, std::string_view word) {
  if (at + word.size() > text.size()) return false;
  for (std::size_t i = 0; i < word.size(); ++i) {
    char a = text[at + i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != word[i]) return false;
  }
  return true;
}

void json_escape(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
}

std::string value_text(const protocol::narration_value& v, bool json) {
  if (const auto* b = std::get_if<bool>(&v)) return *b ? "true" : "false";
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", *d);
    return buf;
  }
  const auto& s = std::get<std::string>(v);
  if (!json) return s;
  std::string out = "\"";
  json_escape(out, s);
  return out + "\"";
}

// Cuts at most `max` bytes without splitting a UTF-8 sequence.
std::string cut_utf8(std::string s, std::size_t max) {
  if (s.size() <= max) return s;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s;
}

}  // namespace

std::string redact(std::string_view text) {
  static constexpr std::string_view k_keys[] = {"api_key=", "apikey=", "api-key=", "token=", "secret=", "password=",
                                                "passwd=", "access_token="};
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (iequals_at(text, i, "bearer ")) {
      out.append(text.substr(i, 7));
      i += 7;
      const std::size_t start = i;
      while (i < text.size() && is_token_char(text[i])) ++i;
      if (i > start) out += "[REDACTED]";
      continue;
    }
    if (iequals_at(text, i, "-----begin ") && text.find("PRIVATE KEY-----", i) != std::string_view::npos) {
      const auto end_marker = text.find("-----END", i);
      const auto end = end_marker == std::string_view::npos ? text.size() : text.find("-----", end_marker + 8);
      out += "[REDACTED]";
      i = end == std::string_view::npos ? text.size() : end + 5;
      continue;
    }
    bool matched = false;
    for (auto key : k_keys) {
      // Only at the start of a word, so that "max_token=" is left alone.
      if (iequals_at(text, i, key) && (i == 0 || !is_token_char(text[i - 1]))) {
        out.append(text.substr(i, key.size()));
        i += key.size();
        const std::size_t start = i;
        while (i < text.size() && is_token_char(text[i])) ++i;
        if (i > start) out += "[REDACTED]";
        matched = true;
        break;
      }
    }
    if (matched) continue;
    if (c == ':' && i + 2 < text.size() && text[i + 1] == '/' && text[i + 2] == '/') {
      // scheme://user:pass@host -> scheme://user:[REDACTED]@host
      const auto authority_end = text.find_first_of("/ ", i + 3);
      const auto at = text.find('@', i + 3);
      if (at != std::string_view::npos && (authority_end == std::string_view::npos || at < authority_end)) {
        const auto colon = text.find(':', i + 3);
        if (colon != std::string_view::npos && colon < at) {
          out.append(text.substr(i, colon + 1 - i));
          out += "[REDACTED]";
          i = at;
          continue;
        }
      }
    }
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
    ++i;
  }
  return out;
}

std::uint64_t unix_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

protocol::narration_event make_narration(const std::string& worker_id, narration_args args) {
  protocol::narration_event e;
  e.worker_id = worker_id;
  e.actor = std::move(args.actor);
  e.action = std::move(args.action);
  e.target = redact(args.target);
  e.human = cut_utf8(redact(args.human), 160);
  e.job_id = std::move(args.job_id);
  e.correlation_id = std::move(args.correlation_id);
  e.time_ms = unix_ms();
  for (auto& [k, v] : args.fields) {
    if (auto* s = std::get_if<std::string>(&v)) *s = redact(*s);
    e.fields.emplace_back(std::move(k), std::move(v));
  }
  return e;
}

void configure_logging(log_format format, std::string_view level) {
  g_format = format;
  auto logger = spdlog::get("worker-orcd");  // idempotent: tests start several workers in one process
  if (!logger) logger = spdlog::stderr_logger_mt("worker-orcd");
  logger->set_pattern(format == log_format::json ? "%v" : "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

void log_progress(const protocol::progress_event& p) {
  if (!spdlog::default_logger()->should_log(spdlog::level::info)) return;
  char buf[320];
  if (g_format == log_format::json) {
    std::snprintf(buf, sizeof buf,
                  "{\"time_ms\":%llu,\"level\":\"info\",\"actor\":\"model-loader\",\"action\":\"progress\","
                  "\"phase\":\"%s\",\"percent\":%.1f,\"bytes_done\":%llu,\"bytes_total\":%llu,"
                  "\"tensors_done\":%u,\"tensors_total\":%u,\"rate_mb_s\":%.1f}",
                  static_cast<unsigned long long>(unix_ms()), std::string(protocol::to_string(p.phase)).c_str(),
                  p.percent, static_cast<unsigned long long>(p.bytes_done),
                  static_cast<unsigned long long>(p.bytes_total), p.tensors_done, p.tensors_total, p.rate_mb_s);
  } else {
    std::snprintf(buf, sizeof buf, "model-loader progress | %s %.1f%% (%u/%u tensors, %.1f MB/s)",
                  std::string(protocol::to_string(p.phase)).c_str(), p.percent, p.tensors_done, p.tensors_total,
                  p.rate_mb_s);
  }
  spdlog::default_logger()->info("{}", buf);
}

void log_narration(const protocol::narration_event& e) {
  const bool warn = e.action == "error" || e.action == "reject" || e.action == "client_gone";
  const auto level = warn ? spdlog::level::warn : spdlog::level::info;
  if (!spdlog::default_logger()->should_log(level)) return;
  std::string line;
  if (g_format == log_format::json) {
    auto field = [&](std::string_view key, std::string_view value) {
      line += ",\"";
      line += key;
      line += "\":\"";
      json_escape(line, value);
      line += '"';
    };
    line = "{\"time_ms\":" + std::to_string(e.time_ms) + ",\"level\":\"" + (warn ? "warn" : "info") + "\"";
    field("worker_id", e.worker_id);
    field("actor", e.actor);
    field("action", e.action);
    field("target", e.target);
    field("human", e.human);
    if (e.correlation_id) field("correlation_id", *e.correlation_id);
    if (e.job_id) field("job_id", *e.job_id);
    for (const auto& [k, v] : e.fields) {
      line += ",\"";
      json_escape(line, k);
      line += "\":" + value_text(v, true);
    }
    line += '}';
  } else {
    line = e.actor + " " + e.action;
    if (e.job_id) line += " job=" + *e.job_id;
    if (e.correlation_id) line += " corr=" + *e.correlation_id;
    line += " | " + e.human;
    for (const auto& [k, v] : e.fields) line += " " + k + "=" + value_text(v, false);
  }
  spdlog::default_logger()->log(level, "{}", line);
}

}  // namespace worker::actors
