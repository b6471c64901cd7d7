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
  std::uint64_t serial = 0;         // names the job in decode steps in flight (jobs may leave meanwhile)
  std::uint32_t steps_in_flight = 0;  // decode steps enqueued for it and not yet collected (0..2)
  bool next_takes_token = false;    // the later of them takes the earlier one's token on the device
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
  j->serial = next_serial_++;
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

namespace {

// Its last history token is the one the next step feeds (a decode step, not a prefill chunk).
bool decode_ready(std::size_t fed, std::size_t history) { return fed + 1 == history; }

// What an engine call's exception means for a job, and whether it was an allocation failure.
std::pair<job_failure, bool> failure_of(const std::exception& e, const char* oom_message) {
  if (const auto* ee = dynamic_cast<const engine_error*>(&e)) return {job_failure{error_code_for(*ee), ee->what()}, is_allocation_failure(*ee)};
  if (dynamic_cast<const std::bad_alloc*>(&e)) return {job_failure{protocol::error_code::vram_oom, oom_message}, true};
  return {job_failure{protocol::error_code::internal, e.what()}, false};
}

// Runs `call` over items [0, n) at once; each call changes nothing when it throws. An allocation
// failure is isolated by running each item alone, so only the items that fail alone fail; any other
// error fails them all. `failed(i, failure, allocation)` hears of each item that failed.
template <typename Call, typename Failed>
void run_isolated(std::size_t n, const char* oom_message, const Call& call, const Failed& failed) {
  if (n == 0) return;
  std::vector<std::size_t> all(n);
  for (std::size_t i = 0; i < n; ++i) all[i] = i;
  try {
    call(std::span<const std::size_t>(all));
  } catch (const std::exception& e) {
    const auto [failure, allocation] = failure_of(e, oom_message);
    if (!allocation || n == 1) {
      for (const auto i : all) failed(i, failure, allocation);
      return;
    }
    for (const auto i : all) {
      try {
        call(std::span<const std::size_t>(&i, 1));
      } catch (const std::exception& alone) {
        const auto [f, a] = failure_of(alone, oom_message);
        failed(i, f, a);
      }
    }
  }
}

}  // namespace

inference_core::job* inference_core::find_job(std::uint64_t serial) {
  for (auto& j : jobs_) {
    if (j->serial == serial) return j.get();
  }
  return nullptr;
}

void inference_core::fail(job& j, job_failure failure, std::vector<job_progress>& progress) {
  job_progress p;
  p.job_id = j.plan.job_id;
  p.failure = std::move(failure);
  finish(j, p);
  progress.push_back(std::move(p));
}

// Enqueues `group` as decode steps of up to k_decode_batch_max items, failures isolated as in
// run_isolated. A job with a step in flight takes that step's token on the device.
std::vector<inference_core::decode_in_flight> inference_core::enqueue_decode(std::vector<job*> group,
                                                                           std::vector<job_progress>& progress) {
  std::vector<decode_in_flight> out;
  auto enqueue = [&](std::span<job* const> js) {
    std::vector<adapters::cuda_sample_item> items;
    for (job* j : js) items.push_back({j->sequence, j->history.back(), j->steps_in_flight > 0, j->plan.sampling, j->history});
    decode_in_flight f;
    {
      std::lock_guard lock(model_->engine.mutex);
      f.ticket = device_sampler_->decode_enqueue(items);
    }
    for (job* j : js) {
      f.jobs.push_back(j->serial);
      if (j->steps_in_flight > 0) {
        j->next_takes_token = true;  // fed once the earlier step's token is known
      } else {
        j->fed = j->history.size();
      }
      ++j->steps_in_flight;
    }
    out.push_back(std::move(f));
  };
  for (std::size_t b0 = 0; b0 < group.size(); b0 += adapters::k_decode_batch_max) {
    const std::span<job* const> batch(group.data() + b0, std::min(adapters::k_decode_batch_max, group.size() - b0));
    run_isolated(
        batch.size(), "out of memory in the decode step",
        [&](std::span<const std::size_t> is) {
          std::vector<job*> js;
          for (const auto i : is) js.push_back(batch[i]);
          enqueue(js);
        },
        [&](std::size_t i, const job_failure& failure, bool allocation) {
          if (allocation) ++oom_failures_;
          fail(*batch[i], failure, progress);
        });
  }
  return out;
}

// The tokens of one decode step; jobs that left or ended since it was enqueued drop theirs unread.
void inference_core::collect_decode(const decode_in_flight& step, std::vector<job_progress>& progress) {
  std::vector<token_id> tokens;
  try {
    std::lock_guard lock(model_->engine.mutex);
    tokens = device_sampler_->decode_collect(step.ticket);
  } catch (const engine_error& e) {
    for (const auto serial : step.jobs) {
      if (job* j = find_job(serial); j && !j->done) fail(*j, job_failure{error_code_for(e), e.what()}, progress);
    }
    return;
  }
  for (std::size_t i = 0; i < step.jobs.size() && i < tokens.size(); ++i) {
    job* j = find_job(step.jobs[i]);
    if (!j || j->done) continue;
    --j->steps_in_flight;
    job_progress p;
    p.job_id = j->plan.job_id;
    accept_token(*j, tokens[i], p);  // appends the token: history = fed + 1
    if (j->next_takes_token) {
      j->fed = j->history.size();  // the step now in flight took it on the device
      j->next_takes_token = false;
    }
    progress.push_back(std::move(p));
  }
}

std::vector<job_progress> inference_core::step() {
  std::vector<job_progress> progress;
  if (jobs_.empty()) {
    in_flight_.clear();  // steps of jobs that all left: dropped unread
    return progress;
  }

  // 1. The next decode batch (device sampling), enqueued before the step in flight is read: jobs in
  //    that step which will go on (no penalties, not at max_tokens after its token) take its token on
  //    the device; jobs whose last token is known feed it.
  std::vector<job*> decode;
  if (device_sampler_ != nullptr) {
    for (auto& jp : jobs_) {
      job& j = *jp;
      if (j.done) continue;
      if (j.steps_in_flight > 0) {
        if (!adapters::penalties_active(j.plan.sampling) && j.generated + 1 < j.plan.max_tokens) decode.push_back(&j);
      } else if (decode_ready(j.fed, j.history.size())) {
        decode.push_back(&j);
      }
    }
  }
  auto next = enqueue_decode(std::move(decode), progress);

  // 2. The tokens of the step in flight.
  for (const auto& f : in_flight_) collect_decode(f, progress);
  in_flight_ = std::move(next);

  // 3. Prefill chunks through forward() (on engines without device sampling, decode tokens as well);
  //    the CPU sampler picks the token after a prompt's last chunk.
  std::vector<std::size_t> ks;
  std::vector<adapters::forward_item> items;
  for (std::size_t k = 0; k < jobs_.size(); ++k) {
    const auto& j = jobs_[k];
    if (j->done || j->steps_in_flight > 0 || j->fed >= j->history.size()) continue;
    if (device_sampler_ != nullptr && decode_ready(j->fed, j->history.size())) continue;  // next step's decode batch
    const std::size_t n = std::min(prefill_chunk_, j->history.size() - j->fed);
    items.push_back({j->sequence, std::span<const token_id>(j->history).subspan(j->fed, n), false});
    ks.push_back(k);
  }
  std::vector<adapters::forward_output> outputs(items.size());
  std::vector<std::optional<job_failure>> failures(items.size());
  auto forward = [&](std::span<const std::size_t> is) {
    std::vector<adapters::forward_item> batch;
    for (const auto i : is) batch.push_back(items[i]);
    std::lock_guard lock(model_->engine.mutex);
    auto out = model_->engine.engine->forward(batch);
    for (std::size_t i = 0; i < is.size(); ++i) outputs[is[i]] = std::move(out.at(i));
  };
  run_isolated(items.size(), "out of memory in the forward pass", forward,
               [&](std::size_t i, const job_failure& failure, bool allocation) {
                 if (allocation) ++oom_failures_;
                 failures[i] = failure;
               });
  for (std::size_t i = 0; i < items.size(); ++i) {
    job& j = *jobs_[ks[i]];
    if (failures[i]) {
      fail(j, std::move(*failures[i]), progress);
      continue;
    }
    j.fed += items[i].tokens.size();
    if (j.fed < j.history.size()) continue;  // prompt not fully prefilled yet
    job_progress p;
    p.job_id = j.plan.job_id;
    accept_token(j, adapters::sample_token(j.plan.sampling, outputs[i].logits, j.history, j.history.size()), p);
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
