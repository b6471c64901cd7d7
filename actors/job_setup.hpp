// Turning a validated submit into a runnable job: the prompt rendered and tokenized (raw text, or chat
// messages in the model's chat format), checked against the context, the seed resolved, the sampling
// parameters mapped. Free of CAF; the session calls it once per job.
#pragma once

#include <string>
#include <variant>

#include "actors/inference_core.hpp"
#include "actors/model_bundle.hpp"
#include "protocol/messages.hpp"

namespace worker::actors {

// The plan, or the error reply that refuses the job at the door (INVALID_REQUEST for a prompt without
// tokens, CONTEXT_OVERFLOW when prompt + max_tokens do not fit).
std::variant<job_plan, protocol::error_reply> plan_job(const model_bundle& model, const protocol::submit_request& request);

// A random 64-bit seed for jobs that do not give one (reported back in `started` and `end`).
std::uint64_t random_seed();

// A random UUID v4 ("5b0c6a1e-...") for jobs without a correlation id.
std::string new_correlation_id();

}  // namespace worker::actors
