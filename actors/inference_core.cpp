// One inference stream's jobs and steps (see inference_core.hpp). The per-token logic (accept_token)
// follows adapters/generation.cpp's `accept` in order: EOG first, then text and stop strings, then
// max_tokens, so the token ids are the same. The text goes through the tokenizer's streaming pieces
// (model::stream_decoder, model::stop_matcher) because the wire needs valid UTF-8: bytes a model emits
// that can never be UTF-8 become U+FFFD, where generate() keeps the raw bytes. tests/actors compares
// the two end to end.
#include "actors/inference_core.hpp"

#include <algorithm>

#include "adapters/cuda_engine.hpp"
#include "model/chat/harmony_parser.hpp"
#include "model/tokenizer/stop_matcher.hpp"
#include "model/tokenizer/stream_decoder.hpp"

namespace worker::actors {

using clock = std::chrono::steady_clock;
using adapters::engine_error;
using adapters::engine_error_code;

struct inference_core::job {
  job_plan plan;
  adapters::sequence_handle sequence;
  std::vector<token_id> history;  // prompt + generated
  std::size_t fed = 0;            // history tokens already given to the engine
  std::uint32_t generated = 0;
  std::optional<model::stream_decoder> decoder;  // token bytes -> whole code points
  std::optional<model::stop_matcher> matcher;    // holds back what may become a stop string
  std::optional<model::harmony_parser> harmony;  // harmony chats: headers out, channels tagged
  clock::time_point start;
  clock::time_point first_token;
  bool done = false;
};

protocol::error_code error_code_for(const engine_error& e) {
  switch (e.code()) {
    case engine_error_code::vram_oom:
    case engine_error_code::kv_exhausted: return protocol::error_code::vram_oom;
    case engine_error_code::context_overflow: return protocol::error_code::context_overflow;
    case engine_error_code::device_error: return protocol::error_code::cuda_error;
    case engine_error_code::invalid_argument:
    case engine_error_code::internal: return protocol::error_code::internal;
  }
  return protocol::error_code::internal;
}

namespace {

bool is_allocation_failure(const engine_error& e) {
  return e.code() == engine_error_code::vram_oom || e.code() == engine_error_code::kv_exhausted;
}

double ms_between(clock::time_point a, clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

inference_core::inference_core(std::shared_ptr<model_bundle> model, std::size_t prefill_chunk)
    : model_(std::move(model)),
      prefill_chunk_(std::max<std::size_t>(1, prefill_chunk)),
      device_sampler_(dynamic_cast<adapters::cuda_engine*>(model_->engine.engine.get())) {}

inference_core::~inference_core() {
  for (auto& j : jobs_) release(*j);
}

void inference_core::release(job& j) {
  if (!j.sequence.valid()) return;
  std::lock_guard lock(model_->engine.mutex);
  model_->engine.engine->close_sequence(j.sequence);
  j.sequence = {};
}

std::optional<job_failure> inference_core::admit(job_plan plan) {
  if (plan.prompt.empty()) return job_failure{protocol::error_code::invalid_request, "the prompt has no tokens"};
  auto j = std::make_unique<job>();
  const std::uint64_t capacity = plan.prompt.size() + std::uint64_t{plan.max_tokens};
  if (capacity > model_->context_length) {
    return job_failure{protocol::error_code::context_overflow,
                       std::to_string(plan.prompt.size()) + " prompt tokens + max_tokens " +
                           std::to_string(plan.max_tokens) + " exceed the context of " +
                           std::to_string(model_->context_length)};
  }
  try {
    std::lock_guard lock(model_->engine.mutex);
    j->sequence = model_->engine.engine->open_sequence(static_cast<std::uint32_t>(capacity));
  } catch (const engine_error& e) {
    if (is_allocation_failure(e)) ++oom_failures_;
    return job_failure{error_code_for(e), e.what()};
  } catch (const std::bad_alloc&) {
    ++oom_failures_;
    return job_failure{protocol::error_code::vram_oom, "out of memory opening the KV cache"};
  }
  j->history = plan.prompt;
  j->decoder.emplace(model_->tokenizer);
  j->matcher.emplace(plan.stop_strings);
  if (plan.harmony) {
    j->harmony.emplace(model_->tokenizer,
                       plan.prefilled ? model::harmony_parser::start::final_message : model::harmony_parser::start::header);
  }
  j->plan = std::move(plan);
  j->start = clock::now();
  jobs_.push_back(std::move(j));
  return std::nullopt;
}

bool inference_core::remove(const std::string& job_id) {
  const auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const auto& j) { return j->plan.job_id == job_id; });
  if (it == jobs_.end()) return false;
  release(**it);
  jobs_.erase(it);
  return true;
}

void inference_core::finish(job& j, job_progress& out) {
  j.done = true;
  out.finished = true;
  const auto now = clock::now();
  if (j.generated == 0) j.first_token = now;
  out.tokens_out = j.generated;
  out.prefill_ms = ms_between(j.start, j.first_token);
  out.decode_ms = ms_between(j.first_token, now);
}

// Releases everything still held (end of generation without a stop string).
void inference_core::flush_text(job& j, job_progress& out) {
  auto tail = j.matcher->push(j.decoder->flush());
  out.text += tail.text;
  out.text += j.matcher->flush();
}

bool inference_core::accept_token(job& j, token_id token, job_progress& out) {
  const auto& plan = j.plan;
  if (j.generated == 0) j.first_token = clock::now();
  out.token = token;
  out.index = j.generated;
  ++j.generated;
  j.history.push_back(token);
  const bool eog = std::find(model_->eog.begin(), model_->eog.end(), token) != model_->eog.end();
  if (j.harmony) return accept_harmony(j, token, out, eog);
  if (eog) {
    out.reason = protocol::stop_reason::eos;
    flush_text(j, out);
    finish(j, out);
    return true;
  }
  auto piece = j.matcher->push(j.decoder->push(static_cast<model::token_id>(token)));
  out.text = std::move(piece.text);
  if (piece.stop) {
    out.reason = protocol::stop_reason::stop_sequence;
    out.stop_string = plan.stop_strings.at(*piece.stop);
    finish(j, out);
    return true;
  }
  if (j.generated >= plan.max_tokens) {
    out.reason = protocol::stop_reason::max_tokens;
    flush_text(j, out);
    finish(j, out);
    return true;
  }
  return false;
}

// A harmony job: the parser strips the message headers and tags text with its channel. Stop strings
// apply to the final answer only (reasoning may mention anything). One token normally yields text of one
// channel; if it closes one message and opens another, the texts are joined under the last channel.
bool inference_core::accept_harmony(job& j, token_id token, job_progress& out, bool eog) {
  auto events = j.harmony->push(static_cast<model::token_id>(token));
  if (eog || j.generated >= j.plan.max_tokens) {
    auto rest = j.harmony->finish();
    events.insert(events.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
  }
  for (auto& e : events) {
    if (e.type != model::harmony_event::kind::text) continue;
    out.channel = std::string(model::to_string(e.channel));
    if (e.channel != model::harmony_channel::final) {
      out.text += e.text;
      continue;
    }
    auto piece = j.matcher->push(e.text);
    out.text += piece.text;
    if (piece.stop) {
      out.reason = protocol::stop_reason::stop_sequence;
      out.stop_string = j.plan.stop_strings.at(*piece.stop);
      finish(j, out);
      return true;
    }
  }
  if (eog || j.generated >= j.plan.max_tokens) {
    const auto held = j.matcher->flush();
    if (!held.empty()) {
      out.text += held;
      out.channel = "final";
    }
    if (!out.channel) out.channel = std::string(model::to_string(j.harmony->channel()));
    out.reason = eog ? protocol::stop_reason::eos : protocol::stop_reason::max_tokens;
    finish(j, out);
    return true;
  }
  if (!out.channel) out.channel = std::string(model::to_string(j.harmony->channel()));
  return false;
}

std::vector<job_progress> inference_core::step() {
  std::vector<job_progress> progress;
  if (jobs_.empty()) return progress;

  std::vector<adapters::forward_item> items;
  items.reserve(jobs_.size());
  // Jobs whose item is the last sampled token (a decode step) sample on the device when the engine can
  // (device_sampler_): only the token id comes back. Prefill chunks return logits for the CPU sampler.
  std::vector<std::size_t> by_forward, by_device;
  for (std::size_t k = 0; k < jobs_.size(); ++k) {
    const auto& j = jobs_[k];
    const std::size_t n = std::min(prefill_chunk_, j->history.size() - j->fed);
    items.push_back({j->sequence, std::span<const token_id>(j->history).subspan(j->fed, n), false});
    const bool decode = n == 1 && j->fed + 1 == j->history.size();
    (device_sampler_ != nullptr && decode ? by_device : by_forward).push_back(k);
  }

  // outputs[k] (logits) or sampled[k] (a device-sampled token) stays empty for a job whose engine call
  // failed (failures[k] says why).
  std::vector<adapters::forward_output> outputs(items.size());
  std::vector<std::optional<token_id>> sampled(items.size());
  std::vector<std::optional<job_failure>> failures(items.size());
  auto forward = [&](std::span<const std::size_t> ks) {
    std::vector<adapters::forward_item> batch;
    for (const auto k : ks) batch.push_back(items[k]);
    std::lock_guard lock(model_->engine.mutex);
    auto out = model_->engine.engine->forward(batch);
    for (std::size_t i = 0; i < ks.size(); ++i) outputs[ks[i]] = std::move(out.at(i));
  };
  auto decode_sample = [&](std::span<const std::size_t> ks) {
    std::vector<adapters::cuda_sample_item> batch;
    for (const auto k : ks) batch.push_back({items[k].sequence, items[k].tokens[0], jobs_[k]->plan.sampling, jobs_[k]->history});
    std::lock_guard lock(model_->engine.mutex);
    const auto out = device_sampler_->decode_sample(batch);
    for (std::size_t i = 0; i < ks.size(); ++i) sampled[ks[i]] = out.at(i);
  };
  // One engine call over the group `ks`. Each call changes no sequence when it throws, so allocation
  // failures are isolated by retrying each job alone; a device or internal error fails the group.
  auto run_group = [&](const std::vector<std::size_t>& ks, const auto& call) {
    if (ks.empty()) return;
    auto run_alone = [&](std::size_t k) {
      try {
        call(std::span(&k, 1));
      } catch (const engine_error& e) {
        if (is_allocation_failure(e)) ++oom_failures_;
        failures[k] = job_failure{error_code_for(e), e.what()};
      } catch (const std::bad_alloc&) {
        ++oom_failures_;
        failures[k] = job_failure{protocol::error_code::vram_oom, "out of memory in the forward pass"};
      } catch (const std::exception& e) {
        failures[k] = job_failure{protocol::error_code::internal, e.what()};
      }
    };
    try {
      call(std::span<const std::size_t>(ks));
    } catch (const engine_error& e) {
      if (is_allocation_failure(e) && ks.size() > 1) {
        for (const auto k : ks) run_alone(k);
      } else {
        if (is_allocation_failure(e)) ++oom_failures_;
        for (const auto k : ks) failures[k] = job_failure{error_code_for(e), e.what()};
      }
    } catch (const std::bad_alloc&) {
      if (ks.size() > 1) {
        for (const auto k : ks) run_alone(k);
      } else {
        ++oom_failures_;
        failures[ks[0]] = job_failure{protocol::error_code::vram_oom, "out of memory in the forward pass"};
      }
    }
  };
  run_group(by_forward, forward);
  run_group(by_device, decode_sample);

  for (std::size_t k = 0; k < items.size(); ++k) {
    job& j = *jobs_[k];
    if (failures[k]) {
      job_progress p;
      p.job_id = j.plan.job_id;
      p.failure = std::move(failures[k]);
      finish(j, p);
      progress.push_back(std::move(p));
      continue;
    }
    j.fed += items[k].tokens.size();
    if (j.fed < j.history.size()) continue;  // prompt not fully prefilled yet
    job_progress p;
    p.job_id = j.plan.job_id;
    const token_id token = sampled[k] ? *sampled[k]
                                      : adapters::sample_token(j.plan.sampling, outputs[k].logits, j.history,
                                                               j.history.size());
    accept_token(j, token, p);
    progress.push_back(std::move(p));
  }

  // Free the KV slots of finished jobs now, before their terminal replies go out.
  for (auto& j : jobs_) {
    if (j->done) release(*j);
  }
  std::erase_if(jobs_, [](const auto& j) { return j->done; });
  return progress;
}

}  // namespace worker::actors
