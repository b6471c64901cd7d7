// Next-token selection on the GPU, the same pipeline as the CPU sampler (adapters/sampler.hpp), so that
// only token ids leave the device:
//   1. penalties (repetition, frequency, presence) on the logits of the tokens in each row's window;
//   2. temperature ≤ 0: argmax (lowest id on ties);
//   3. otherwise the candidates are the finite logits, in descending order (ties by id) when top_k or
//      top_p is active, else in id order; top_k, top_p (on the temperature-1 softmax, smallest prefix
//      reaching top_p), min_p (l − l_max ≥ ln min_p), then p ∝ exp((l − l_max)/T), and the first
//      candidate whose cumulative probability exceeds u, u = Philox4x32-10(seed, position) (53 bits).
// Softmax sums and cumulative sums are in double; sums over candidates run in fixed chunks of the
// block, so a row's result depends only on that row.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace worker::gpu {

struct sample_params {
  float temperature = 1.0f;
  std::uint32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  float presence_penalty = 0.0f;
  float frequency_penalty = 0.0f;
  std::uint32_t pad_ = 0;
  std::uint64_t seed = 0;
  std::uint64_t position = 0;       // the index the sampled token will have in its sequence
  std::uint32_t penalty_begin = 0;  // this row's (token, count) pairs in the penalty arrays
  std::uint32_t penalty_count = 0;
};

// Scratch for sample_rows (device memory the caller owns).
struct sample_workspace {
  float* keys = nullptr;             // [rows][vocab]
  float* keys_sorted = nullptr;      // [rows][vocab]
  std::int32_t* ids = nullptr;       // [rows][vocab]
  std::int32_t* ids_sorted = nullptr;
  int* offsets = nullptr;            // [rows + 1] segment offsets (filled by sample_rows)
  float* argmax_v = nullptr;         // [rows][k_argmax_blocks] per-block maxima (greedy rows)
  std::int32_t* argmax_i = nullptr;  // [rows][k_argmax_blocks]
  std::uint32_t* argmax_done = nullptr;  // [rows] blocks done per row: zero before the first call, each call leaves it so
  void* cub_temp = nullptr;
  std::size_t cub_temp_bytes = 0;
};

constexpr std::uint32_t k_argmax_blocks = 64;  // first argmax pass: blocks per row

// Bytes of cub temp storage needed for `rows` × `vocab` (call once at set-up).
std::size_t sample_cub_temp_bytes(std::uint32_t rows, std::uint32_t vocab);

// Device arrays: logits [rows][vocab] (penalized in place), params [rows], penalty tokens/counts,
// out [rows]. `any_penalty` must be true when some row has penalty pairs, `any_sampled` when some row has
// temperature > 0, `any_sorted` when such a row has top_k > 0 or top_p < 1 (then the sort runs); a false
// flag skips that step's kernels.
void sample_rows(float* logits, std::uint32_t rows, std::uint32_t vocab, const sample_params* params,
                 const std::int32_t* penalty_tokens, const std::int32_t* penalty_counts, bool any_penalty,
                 bool any_sampled, bool any_sorted, const sample_workspace& ws, std::int32_t* out, cudaStream_t stream);

// Host/device Philox4x32-10 draw in [0, 1) for (seed, position) — identical to adapters' sampler_uniform.
double philox_uniform_host(std::uint64_t seed, std::uint64_t position);

}  // namespace worker::gpu
