// The work of one inference stream, free of CAF: a set of jobs, each holding one KV sequence, advanced
// together by step(): one engine step (a forward call, plus an enqueued decode step for device-sampled
// jobs) in which every job contributes either its next prefill chunk or its last sampled token
// (continuous batching: jobs join and leave between steps).
// Sampling, end-of-generation, stop strings and max_tokens follow adapters::generate, so a job's tokens
// equal generate()'s for the same seed, and so does its text wherever the model's bytes are valid UTF-8
// (invalid bytes become U+FFFD here: the wire carries only valid UTF-8). The engine's batch invariance
// and the sampler's (seed, position) draw make all of it independent of the other jobs.
//
// Sampling: prefill's last chunk returns logits and the CPU sampler (adapters/sampler.hpp) picks the
// first token; decode steps on a CUDA engine go through cuda_engine::decode_enqueue / decode_collect,
// which run the same pipeline on the device (gpu/sampling.cuh promises the CPU sampler's token for the
// same logits, and tests/gpu checks it), so only token ids leave the GPU. Other engines sample every
// token on the CPU.
//
// Pipelined decode (CUDA engine): step() enqueues this step's decode batch before it reads the tokens
// of the one before, so the GPU runs while the host handles tokens, replies and messages. A job in the
// step in flight joins the next one with its input token left on the device (its token is not known
// yet) unless it uses penalties (their window needs the token) or will stop at max_tokens anyway; if
// the token in flight ends the job (end of generation, a stop string), the next step's token for it is
// dropped unread — one step of GPU work per such job is the price of the overlap.
//
// Failures are per job: an allocation failure (engine vram_oom / kv_exhausted, std::bad_alloc) inside
// a batched forward is retried job by job, so only the job(s) that fail alone get VRAM_OOM.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/model_bundle.hpp"
#include "adapters/cuda_engine.hpp"
#include "adapters/sampler.hpp"
#include "protocol/messages.hpp"

namespace worker::actors {

// A job ready to run: prompt tokenized, seed resolved.
struct job_plan {
  std::string job_id;
  std::vector<token_id> prompt;  // non-empty
  adapters::sampling_params sampling;
  std::uint32_t max_tokens = 0;
  std::vector<std::string> stop_strings;
  // A harmony chat (gpt-oss): the output is parsed into channels; `prefilled` when the prompt ends
  // inside a final-channel message (assistant_prefill).
  bool harmony = false;
  bool prefilled = false;
};

struct job_failure {
  protocol::error_code code = protocol::error_code::internal;
  std::string message;
};

// What one step did for one job: a sampled token (and the text it released), and/or the job's end.
struct job_progress {
  std::string job_id;
  std::optional<token_id> token;  // the token sampled this step (the EOG token included)
  std::uint32_t index = 0;        // its position among the job's generated tokens
  std::string text;               // text released by this step (valid UTF-8, maybe empty)
  std::optional<std::string> channel;  // harmony jobs: the channel `text` belongs to

  bool finished = false;
  std::optional<job_failure> failure;  // finished with an error
  protocol::stop_reason reason = protocol::stop_reason::max_tokens;
  std::string stop_string;       // when reason == stop_sequence
  std::uint32_t tokens_out = 0;  // generated tokens, EOG included
  double prefill_ms = 0;         // admit -> first token
  double decode_ms = 0;          // first token -> end
};

class inference_core {
 public:
  inference_core(std::shared_ptr<model_bundle> model, std::size_t prefill_chunk);
  ~inference_core();  // closes every open sequence
  inference_core(const inference_core&) = delete;
  inference_core& operator=(const inference_core&) = delete;

  // Opens the job's KV sequence (prompt + max_tokens positions). On failure nothing is kept and the
  // failure is returned (VRAM_OOM, CONTEXT_OVERFLOW, ...).
  std::optional<job_failure> admit(job_plan plan);
  // Drops a job and frees its KV slot. False when the job is not here (finished, never admitted).
  bool remove(const std::string& job_id);

  std::size_t active() const { return jobs_.size(); }
  bool idle() const { return jobs_.empty(); }

  // One step over all jobs: the next decode batch enqueued, the previous one's tokens, prefill chunks.
  // Finished jobs (completed or failed) are removed before it returns.
  std::vector<job_progress> step();

  // Allocation failures seen so far (each one lowers the stream's admission limit).
  std::uint64_t oom_failures() const { return oom_failures_; }

 private:
  struct job;
  void release(job& j);
  bool accept_token(job& j, token_id token, job_progress& out);
  job* find_job(std::uint64_t serial);
  // One decode step enqueued on the device: its jobs (by serial) in item order.
  struct decode_in_flight {
    adapters::decode_ticket ticket = 0;
    std::vector<std::uint64_t> jobs;
  };
  std::vector<decode_in_flight> enqueue_decode(std::vector<job*> group, std::vector<job_progress>& progress);
  void collect_decode(const decode_in_flight& step, std::vector<job_progress>& progress);
  void fail(job& j, job_failure failure, std::vector<job_progress>& progress);
  bool accept_harmony(job& j, token_id token, job_progress& out, bool eog);
  void flush_text(job& j, job_progress& out);
  void finish(job& j, job_progress& out);

  std::shared_ptr<model_bundle> model_;
  std::size_t prefill_chunk_;
  adapters::cuda_engine* device_sampler_;  // the engine when it samples on the device (CUDA), else null
  std::vector<std::unique_ptr<job>> jobs_;
  std::uint64_t next_serial_ = 1;
  std::vector<decode_in_flight> in_flight_;  // enqueued by the previous step(), collected by the next
  std::uint64_t oom_failures_ = 0;
};

// The protocol error for an engine failure (VRAM_OOM for allocation failures, CUDA_ERROR, ...).
protocol::error_code error_code_for(const adapters::engine_error& e);

}  // namespace worker::actors
