// The CUDA engine: runs a decoder_model (qwen2 in this part; gpt-oss's MoE blocks come later) with every
// weight, the KV cache and all activations in VRAM. Selected with `--device cuda:N`.
//
// Paths (see docs/performance.md for numbers):
// - decode (items of one token, batches of up to 16 sequences): int8-activation matvec kernels that
//   stream each weight once, split-KV attention over the fp16 cache, the whole step captured once per
//   batch size as a CUDA graph and replayed; steps may be pipelined (decode_enqueue / decode_collect:
//   a step's input token read on the device from the step before, so the host's turn-around between
//   steps overlaps the GPU);
// - prefill (items of several tokens, one sequence at a time, in chunks): fp16 tensor-core GEMMs on
//   dequantized weight tiles (cuBLAS), the same attention kernel with one query per prompt position.
// Batch invariance: a decode token's kernels compute each sequence's rows in a fixed order independent
// of the batch, and prefill items never share kernels, so results do not depend on what else runs.
//
// Recoverable failures keep the engine usable: open_sequence turns a failed KV allocation into
// engine_error(vram_oom) and leaves VRAM as it was.
// memory_state() (the one thread-safe call) reports cudaMemGetInfo of the device and checks every
// arena allocation with cudaPointerGetAttributes; it shares only the allocation lock with
// open_sequence/close_sequence. Every call selects the engine's device on the calling thread first.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <memory>
#include <span>
#include <vector>

#include "adapters/engine.hpp"
#include "adapters/registry.hpp"
#include "adapters/sampler.hpp"

namespace worker::adapters {

struct cuda_engine_options {
  int device = 0;
  std::uint32_t max_sequences = 16;   // KV slots open at once
  std::uint32_t max_context = 8192;   // per-sequence positions (capped by the model's context); sizes the
                                      // RoPE table and the attention partials (the grids follow the positions)
  std::uint32_t prefill_chunk = 512;  // prompt tokens per GEMM pass
  bool cuda_graphs = true;            // capture/replay the decode step
  // Attention grids sized by the positions a pass attends over (cuda_engine_state.hpp
  // decode_attention_splits); false: by the context limit, as before session 19 (tests, measuring).
  bool attention_grid_by_positions = true;
  std::uint64_t kv_plan_bytes = 0;    // KV bytes the pre-flight plans for; 0: max_sequences × min(1024, context)
  adapter_options adapter;
  // Loader: called with (bytes done, bytes total, tensors done, tensors total, phase name).
  std::function<void(std::uint64_t, std::uint64_t, std::uint32_t, std::uint32_t, std::string_view)> on_load_progress;
};

struct cuda_load_report {
  double seconds = 0.0;          // loader wall time (pinned staging + H2D + re-layout)
  double gb_per_s = 0.0;         // file bytes / seconds
  std::uint64_t file_bytes = 0;  // weight bytes read
  std::uint64_t device_bytes = 0;
};

// One VRAM allocation of the engine, for residency checks.
struct cuda_allocation {
  const void* ptr = nullptr;
  std::size_t bytes = 0;
  std::string tag;  // weights | kv | scratch | rope | ...
};

// One decode step of one sequence for decode_sample() / decode_enqueue(): append the input token and
// choose the next one on the GPU with the CPU sampler's pipeline (adapters/sampler.hpp).
struct cuda_sample_item {
  sequence_handle sequence;
  token_id token = 0;
  // The input token is the one this sequence's latest decode_enqueue step samples, left on the device
  // (`token` is ignored): the caller may enqueue the next step before it reads that step's tokens.
  // That step must be one of the last k_decode_steps_in_flight enqueued, and penalties must be off.
  bool token_from_previous_step = false;
  sampling_params params;
  // Prompt + generated so far, for penalties and the sampler's position: the input token included
  // when the caller knows it; with token_from_previous_step everything before it.
  std::span<const token_id> history;
};

// Items a decode step takes at most.
constexpr std::size_t k_decode_batch_max = 16;
// A decode step enqueued by decode_enqueue, to collect once.
using decode_ticket = std::uint64_t;
// Steps that may be enqueued and not yet collected; enqueueing more drops the oldest (its tokens are
// lost). A pipelining caller holds two (the worker's inference streams, --streams ≤ 8, share 16).
constexpr std::uint32_t k_decode_steps_in_flight = 16;

class cuda_engine : public engine {
 public:
  // Appends each item's token (decode path) and returns the sampled next token of each; only the token
  // ids leave the GPU. decode_enqueue + decode_collect, k_decode_batch_max items a step.
  virtual std::vector<token_id> decode_sample(std::span<const cuda_sample_item> items) = 0;
  // Pipelined decode: enqueues one step of up to k_decode_batch_max items (distinct sequences) and
  // returns at once; the sequences' lengths grow now. decode_collect waits for that step and returns
  // its tokens, in item order; each ticket is collected once. A step whose tokens the caller no longer
  // wants (its job stopped) may be left uncollected. Throws engine_error: invalid_argument for a ticket
  // not in flight, a token_from_previous_step item without such a step or with penalties; the errors
  // of decode_sample otherwise. Each call changes nothing when it throws.
  virtual decode_ticket decode_enqueue(std::span<const cuda_sample_item> items) = 0;
  virtual std::vector<token_id> decode_collect(decode_ticket ticket) = 0;

  virtual const cuda_load_report& load_report() const = 0;
  virtual std::vector<cuda_allocation> allocations() const = 0;
  virtual std::uint64_t vram_bytes() const = 0;  // all engine allocations
  virtual int device_index() const = 0;
  // Test hook: while set, every KV allocation fails as if the device were out of memory.
  virtual void inject_kv_allocation_failure(bool on) = 0;
  // Bytes of weights and KV one decode step of `batch` sequences reads at their current lengths.
  virtual std::uint64_t decode_bytes_per_step(std::span<const sequence_handle> sequences) const = 0;
};

// Maps the file, runs its architecture's adapter, checks VRAM (pre-flight: weights + planned KV + scratch
// against cudaMemGetInfo, before any large allocation), loads the weights. Throws model::gguf_error for a
// bad file, gpu::insufficient_vram_error (gpu/gpu_error.hpp: code INSUFFICIENT_VRAM, needed and free
// bytes) when VRAM is short, engine_error(vram_oom) when an allocation fails anyway, and
// engine_error(device_error) when there is no usable GPU or the build has no CUDA.
std::unique_ptr<cuda_engine> open_cuda_engine(const std::filesystem::path& model_path,
                                              const cuda_engine_options& options = {});

}  // namespace worker::adapters
