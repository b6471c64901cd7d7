// Lockstep generation over an engine (see generation.hpp).
#include "adapters/generation.hpp"

#include <algorithm>
#include <chrono>

namespace worker::adapters {

std::string_view to_string(stop_reason reason) {
  switch (reason) {
    case stop_reason::max_tokens: return "max_tokens";
    case stop_reason::eog: return "eog";
    case stop_reason::stop_string: return "stop_string";
    case stop_reason::context_full: return "context_full";
    case stop_reason::cancelled: return "cancelled";
  }
  return "unknown";
}

namespace {

// Bytes of an incomplete UTF-8 sequence at the end of `s` (0 if it ends on a boundary).
std::size_t incomplete_utf8_tail(std::string_view s) {
  const std::size_t n = s.size();
  for (std::size_t back = 1; back <= std::min<std::size_t>(3, n); ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    std::size_t need = 1;
    if ((c & 0xE0) == 0xC0) need = 2;
    else if ((c & 0xF0) == 0xE0) need = 3;
    else if ((c & 0xF8) == 0xF0) need = 4;
    return need > back ? back : 0;
  }
  return 0;
}

using clock = std::chrono::steady_clock;

struct job_state {
  const generation_request* request = nullptr;
  sequence_handle sequence;
  std::uint32_t capacity = 0;
  std::vector<token_id> history;  // prompt + generated
  std::size_t fed = 0;            // history tokens already given to the engine
  std::size_t emitted = 0;        // text bytes already streamed
  bool done = false;
  clock::time_point start;
  clock::time_point first_token;
  generation_result result;
};

// Closes every sequence still open when generation ends or throws.
struct sequence_guard {
  engine& e;
  std::vector<job_state>& jobs;
  ~sequence_guard() {
    for (auto& j : jobs) {
      if (j.sequence.valid()) e.close_sequence(j.sequence);
      j.sequence = {};
    }
  }
};

void finish(job_state& j, stop_reason reason, std::size_t index, const generation_hooks& hooks) {
  j.done = true;
  j.result.reason = reason;
  if (hooks.on_text && j.emitted < j.result.text.size()) {
    hooks.on_text(index, std::string_view(j.result.text).substr(j.emitted));
  }
  j.emitted = j.result.text.size();
  const auto now = clock::now();
  if (j.result.tokens.empty()) j.first_token = now;
  j.result.prefill_seconds = std::chrono::duration<double>(j.first_token - j.start).count();
  j.result.decode_seconds = std::chrono::duration<double>(now - j.first_token).count();
}

// Adds a sampled token: text, stop checks, streaming. Returns true if the job stopped.
bool accept(job_state& j, token_id token, std::size_t index, const generation_hooks& hooks) {
  const generation_request& r = *j.request;
  if (j.result.tokens.empty()) j.first_token = clock::now();
  j.result.tokens.push_back(token);
  j.history.push_back(token);
  if (std::find(r.eog_tokens.begin(), r.eog_tokens.end(), token) != r.eog_tokens.end()) {
    finish(j, stop_reason::eog, index, hooks);
    return true;
  }
  if (hooks.token_text) {
    std::string& text = j.result.text;
    const std::size_t before = text.size();
    text += hooks.token_text(token);
    for (const auto& stop : r.stop_strings) {
      if (stop.empty()) continue;
      const std::size_t from = before >= stop.size() ? before - stop.size() + 1 : 0;
      const std::size_t at = text.find(stop, from);
      if (at != std::string::npos) {
        text.resize(at);
        j.result.stop_string = stop;
        j.emitted = std::min(j.emitted, text.size());
        finish(j, stop_reason::stop_string, index, hooks);
        return true;
      }
    }
    const std::size_t safe = text.size() - text_holdback(text, r.stop_strings);
    if (hooks.on_text && safe > j.emitted) {
      hooks.on_text(index, std::string_view(text).substr(j.emitted, safe - j.emitted));
      j.emitted = safe;
    }
  }
  if (hooks.cancelled && hooks.cancelled(index)) {
    finish(j, stop_reason::cancelled, index, hooks);
    return true;
  }
  if (j.result.tokens.size() >= r.max_tokens) {
    finish(j, stop_reason::max_tokens, index, hooks);
    return true;
  }
  if (j.history.size() >= j.capacity) {
    finish(j, stop_reason::context_full, index, hooks);
    return true;
  }
  return false;
}

}  // namespace

std::size_t text_holdback(std::string_view text, std::span<const std::string> stop_strings) {
  std::size_t hold = incomplete_utf8_tail(text);
  for (const auto& stop : stop_strings) {
    for (std::size_t len = std::min(stop.size() - (stop.empty() ? 0 : 1), text.size()); len > hold; --len) {
      if (text.substr(text.size() - len) == std::string_view(stop).substr(0, len)) {
        hold = len;
        break;
      }
    }
  }
  return hold;
}

std::vector<generation_result> generate_batch(engine& e, std::span<const generation_request> requests,
                                              const generation_hooks& hooks) {
  std::vector<job_state> jobs(requests.size());
  sequence_guard guard{e, jobs};
  const std::uint32_t context = e.summary().context_length;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    if (r.prompt.empty()) throw engine_error(engine_error_code::invalid_argument, "empty prompt");
    if (r.prompt.size() >= context) {
      throw engine_error(engine_error_code::context_overflow,
                         "prompt of " + std::to_string(r.prompt.size()) + " tokens leaves no room in the context of " +
                             std::to_string(context));
    }
    job_state& j = jobs[i];
    j.request = &r;
    j.capacity = static_cast<std::uint32_t>(std::min<std::uint64_t>(r.prompt.size() + std::uint64_t{r.max_tokens}, context));
    j.sequence = e.open_sequence(j.capacity);
    j.history = r.prompt;
    j.start = clock::now();
    if (r.max_tokens == 0) finish(j, stop_reason::max_tokens, i, hooks);
  }

  const std::size_t chunk = std::max<std::size_t>(1, hooks.prefill_chunk);
  for (;;) {
    std::vector<forward_item> items;
    std::vector<std::size_t> owner;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      job_state& j = jobs[i];
      if (j.done) continue;
      const std::size_t n = std::min(chunk, j.history.size() - j.fed);
      items.push_back({j.sequence, std::span<const token_id>(j.history).subspan(j.fed, n), false});
      owner.push_back(i);
    }
    if (items.empty()) break;
    const auto outputs = e.forward(items);
    for (std::size_t k = 0; k < items.size(); ++k) {
      job_state& j = jobs[owner[k]];
      j.fed += items[k].tokens.size();
      if (j.fed < j.history.size()) continue;  // prompt not fully prefilled yet
      const auto& r = *j.request;
      const token_id token = sample_token(r.sampling, outputs[k].logits, j.history, j.history.size());
      accept(j, token, owner[k], hooks);
    }
  }

  std::vector<generation_result> results;
  results.reserve(jobs.size());
  for (auto& j : jobs) results.push_back(std::move(j.result));
  return results;
}

generation_result generate(engine& e, const generation_request& request, const generation_hooks& hooks) {
  return std::move(generate_batch(e, std::span<const generation_request>(&request, 1), hooks).front());
}

}  // namespace worker::adapters
