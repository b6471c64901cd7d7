// The generation loop over an engine: prefill the prompt, then sample and decode one token per step
// until a stop condition. Several jobs run in lockstep through one forward call per step; because the
// engine is batch invariant and the sampler is a function of (seed, position), each job's tokens are
// the same as when it runs alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/engine.hpp"
#include "adapters/sampler.hpp"

namespace worker::adapters {

enum class stop_reason {
  max_tokens,    // max_tokens generated
  eog,           // an end-of-generation token was sampled (it is the last entry of `tokens`)
  stop_string,   // the text contains a stop string (text is cut before it)
  context_full,  // the sequence reached the context limit
  cancelled,     // the cancel hook said so
};

std::string_view to_string(stop_reason reason);

struct generation_request {
  std::vector<token_id> prompt;          // non-empty
  sampling_params sampling;
  std::uint32_t max_tokens = 256;
  std::vector<token_id> eog_tokens;      // e.g. the model's EOG set (model-facts §6.5)
  std::vector<std::string> stop_strings; // matched on the detokenized bytes (needs hooks.token_text)
};

struct generation_result {
  std::vector<token_id> tokens;  // generated ids, including a final EOG token
  std::string text;              // detokenized output (EOG excluded), cut before a matched stop string
  stop_reason reason = stop_reason::max_tokens;
  std::string stop_string;       // the stop string that matched, if any
  double prefill_seconds = 0.0;  // until the first token was chosen
  double decode_seconds = 0.0;   // the rest
};

struct generation_hooks {
  // Bytes of one token's text (a piece may end inside a UTF-8 sequence). Without it, no text and no
  // stop strings.
  std::function<std::string(token_id)> token_text;
  // Streams text as it becomes final for job `job`: bytes that can no longer turn into a stop string
  // and do not end inside a UTF-8 sequence (the rest follows when it does, or at the end).
  std::function<void(std::size_t job, std::string_view text)> on_text;
  // Called after each sampled token; returning true stops the job with stop_reason::cancelled.
  std::function<bool(std::size_t job)> cancelled;
  std::size_t prefill_chunk = 512;  // prompt tokens per forward call and job
};

// Runs all jobs to completion. Opens one sequence per job (prompt + max_tokens positions, clamped to the
// model's context) and closes them before returning or throwing. Throws engine_error (context_overflow
// when a prompt alone does not fit, kv_exhausted, invalid_argument for an empty prompt).
std::vector<generation_result> generate_batch(engine& e, std::span<const generation_request> requests,
                                              const generation_hooks& hooks = {});

generation_result generate(engine& e, const generation_request& request, const generation_hooks& hooks = {});

// Bytes at the end of `text` that must be held back: the longest suffix that is a proper prefix of a
// stop string, or an incomplete trailing UTF-8 sequence, whichever is longer.
std::size_t text_holdback(std::string_view text, std::span<const std::string> stop_strings);

}  // namespace worker::adapters
