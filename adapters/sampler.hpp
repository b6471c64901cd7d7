// Next-token sampling. Stateless and deterministic by construction: the token chosen depends only on
// (logits, history, parameters, seed, position). The random draw is Philox4x32-10 keyed by the seed with
// the position as its counter, so a job gives the same tokens alone or inside any batch, and a draw is
// reproducible without replaying earlier ones.
//
// Pipeline (llama.cpp's default order, so the oracle's semantics carry over):
//   1. penalties over the last `penalty_last_n` history tokens (prompt + generated; 0 = all of it):
//      for each token seen c > 0 times: repetition (CTRL): l = l > 0 ? l / r : l · r;
//      then l -= c · frequency_penalty + presence_penalty.
//   2. temperature <= 0: greedy, the largest logit (lowest id on ties). Done.
//   3. top_k (> 0): keep the k largest logits (ties: lower id first).
//   4. top_p (< 1): softmax of the kept logits; keep the smallest prefix, in descending order, whose
//      mass reaches top_p (at least one token).
//   5. min_p (> 0): keep tokens with p >= min_p · p_max (p from the same softmax).
//   6. temperature: p_i ∝ exp((l_i - l_max) / T) over the kept tokens.
//   7. draw u ∈ [0, 1) = philox(seed, position); walk the kept tokens (in descending logit order, ties
//      by id, when top_k or top_p is active; else in id order, which saves sorting the vocabulary) and
//      take the first whose cumulative probability exceeds u.
// Softmax sums are accumulated in double.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "adapters/engine.hpp"

namespace worker::adapters {

struct sampling_params {
  float temperature = 1.0f;          // 0: greedy
  std::uint32_t top_k = 0;           // 0: off
  float top_p = 1.0f;                // 1: off
  float min_p = 0.0f;                // 0: off
  float repetition_penalty = 1.0f;   // 1: off
  float presence_penalty = 0.0f;     // 0: off
  float frequency_penalty = 0.0f;    // 0: off
  std::uint32_t penalty_last_n = 64; // history window for penalties; 0: the whole history
  std::uint64_t seed = 0;
};

// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
std::array<std::uint32_t, 4> philox4x32(std::array<std::uint32_t, 4> counter, std::array<std::uint32_t, 2> key);

// The uniform draw for (seed, position): 53 random bits in [0, 1).
double sampler_uniform(std::uint64_t seed, std::uint64_t position);

// Whether step 1 changes anything: some penalty differs from its neutral value.
bool penalties_active(const sampling_params& p);

// Applies step 1 in place to `logits` (vocab-sized).
void apply_penalties(const sampling_params& p, std::span<float> logits, std::span<const token_id> history);

// The distribution the draw uses (steps 3-6), for temperature > 0: tokens in draw order with their
// probabilities (summing to 1). Logits must already be penalized.
struct token_probability {
  token_id token;
  double p;
};
std::vector<token_probability> sampling_distribution(const sampling_params& p, std::span<const float> logits);

// The whole pipeline: copies the logits, applies penalties, and picks the token for `position` (the index
// the token will have in its sequence).
token_id sample_token(const sampling_params& p, std::span<const float> logits, std::span<const token_id> history,
                      std::uint64_t position);

// Largest logit, lowest id on ties.
token_id argmax(std::span<const float> logits);

}  // namespace worker::adapters
