// Internal to the CUDA engine (cuda_engine.cpp, cuda_engine_passes.cpp): the model bound to VRAM, the
// scratch buffers of the decode and prefill paths, and the passes that enqueue their kernels.
#pragma once

#if WORKER_ORCD_HAVE_CUDA

#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "adapters/cuda_engine.hpp"
#include "adapters/decoder.hpp"
#include "gpu/device.hpp"
#include "gpu/device_matrix.hpp"
#include "gpu/kv_layout.hpp"
#include "gpu/loader.hpp"
#include "gpu/sampling.cuh"
#include "gpu/vram_arena.hpp"

namespace worker::adapters::cuda_detail {

// One layer's weights in VRAM (qwen2 skeleton: attention + dense SwiGLU FFN).
struct dev_layer {
  const float* attn_norm = nullptr;  // [d]
  gpu::device_matrix wq, wk, wv, wo;  // [q_dim×d], [kv×d], [kv×d], [d×q_dim]
  const float* bq = nullptr;         // [q_dim] or null
  const float* bk = nullptr;         // [kv]
  const float* bv = nullptr;         // [kv]
  const float* ffn_norm = nullptr;   // [d]
  gpu::device_matrix gate, up, down;  // [ff×d], [ff×d], [d×ff]
};

struct dev_model {
  gpu::device_matrix token_embd;  // [vocab×d]
  gpu::device_matrix output;      // [vocab×d]
  const float* output_norm = nullptr;
  std::vector<dev_layer> layers;
  std::uint32_t d = 0, n_head = 0, n_head_kv = 0, head_dim = 0, q_dim = 0, kv_dim = 0, n_ff = 0, vocab = 0;
  float eps = 1e-6f;
  float scale = 1.0f;  // attention scale
};

constexpr std::uint32_t k_max_batch = 16;     // decode columns per step (matvec limit)
constexpr std::uint32_t k_query_slice = 128;  // prefill queries per attention launch
constexpr std::uint32_t k_logit_slice = 64;   // all-logits rows per output GEMM

// The inputs of one decode step — per token its id (or where an earlier step left it), sequence
// descriptor, sequence index, position and sampling parameters — laid out alike in pinned host memory
// and in device scratch, so that a step moves them in ONE host → device copy before its graph replays
// (four separate copies plus the sampling parameters' own copy cost a transfer latency each, in series
// with the kernels).
struct decode_step_inputs {
  gpu::kv_seq_desc seqs[k_max_batch];
  gpu::sample_params sparams[k_max_batch];
  std::int32_t ids[k_max_batch];
  std::int32_t tok_seq[k_max_batch];
  std::int32_t tok_pos[k_max_batch];
  // Per token: where in scratch::sampled an earlier step left its input id (pipelined decode: the
  // sequence's previous step, not yet read back), or -1 for ids[j].
  std::int32_t from_sampled[k_max_batch];
};

// Decode steps that may be in flight at once (cuda_engine::decode_enqueue): each has its own slot of
// sampled ids on the device and in pinned memory, so a step can read its input token from the one
// before it while the host reads an older step's tokens.
constexpr std::uint32_t k_step_ring = adapters::k_decode_steps_in_flight;

// Device scratch, carved from one arena allocation, plus pinned host mirrors of the per-step inputs.
struct scratch {
  std::uint32_t xw = 0;       // width of the generic activation buffers: max(d, q_dim, ff)
  std::uint32_t xw_pad = 0;   // xw rounded up to 256 (q8 row stride)
  std::uint32_t aw = 0;       // prefill fp16 activation row: max(d, q_dim)
  std::uint32_t chunk = 0;    // prefill tokens per pass
  std::uint32_t max_splits = 0;        // decode attention splits (k_attn_split_decode positions each)
  std::uint32_t max_splits_prefill = 0;
  std::size_t tile_elems = 0;

  // decode
  decode_step_inputs* step_in = nullptr;  // the fields below point into it
  std::int32_t* ids = nullptr;
  gpu::kv_seq_desc* seqs = nullptr;
  std::int32_t* tok_seq = nullptr;
  std::int32_t* tok_pos = nullptr;
  std::int32_t* from_sampled = nullptr;
  float* h = nullptr;
  float* xf = nullptr;
  std::int8_t* xq = nullptr;     // q_hi
  std::int8_t* xq_lo = nullptr;  // q_lo
  float4* xds = nullptr;
  float* q = nullptr;
  float* k = nullptr;
  float* v = nullptr;
  float* act = nullptr;
  float* att_po = nullptr;
  float2* att_pml = nullptr;
  std::uint32_t* att_count = nullptr;  // [k_max_batch][n_head_kv] fused-merge counters (zero between uses)
  float* logits = nullptr;
  // sampling
  gpu::sample_params* sparams = nullptr;
  std::int32_t* pen_tokens = nullptr;
  std::int32_t* pen_counts = nullptr;
  std::int32_t* sampled = nullptr;  // [k_step_ring][k_max_batch]: a step's sampled ids in its ring slot's row
  gpu::sample_workspace sws;
  std::uint32_t max_pen = 0;  // penalty pairs over the whole batch

  // prefill
  std::int32_t* p_ids = nullptr;
  std::int32_t* p_tok_seq = nullptr;
  std::int32_t* p_tok_pos = nullptr;
  gpu::kv_seq_desc* p_seq = nullptr;
  float* ph = nullptr;
  __half* a16 = nullptr;
  float* pq = nullptr;
  float* pk = nullptr;
  float* pv = nullptr;
  float* pg = nullptr;
  float* pu = nullptr;
  __half* act16 = nullptr;
  float* p_att_po = nullptr;
  float2* p_att_pml = nullptr;
  __half* tile = nullptr;
  float* p_logits = nullptr;

  const float2* rope = nullptr;  // [max_context][head_dim/2]
  std::uint32_t rope_positions = 0;
};

// Pinned host mirrors of the per-step device inputs (decode_graphs::launch copies one to the device
// before the step).
struct host_mirror {
  decode_step_inputs* step_in = nullptr;  // forward()'s decode steps: ids, seqs, tok_seq and tok_pos point into it
  decode_step_inputs* ring_in[k_step_ring] = {};    // decode_enqueue's steps, one per ring slot
  std::int32_t* ring_sampled[k_step_ring] = {};     // [k_max_batch] each: the slot's sampled ids, read back
  std::int32_t* ids = nullptr;
  gpu::kv_seq_desc* seqs = nullptr;
  std::int32_t* tok_seq = nullptr;
  std::int32_t* tok_pos = nullptr;
  std::int32_t* pen_tokens = nullptr;
  std::int32_t* pen_counts = nullptr;
  std::int32_t* p_ids = nullptr;
  std::int32_t* p_tok_pos = nullptr;
  gpu::kv_seq_desc* p_seq = nullptr;
};

// Everything a pass needs.
struct pass_context {
  const gpu::device_context* ctx = nullptr;
  const dev_model* model = nullptr;
  const scratch* s = nullptr;
  const host_mirror* hm = nullptr;
};

// Bytes of scratch for these dimensions (the pre-flight adds this); `context` = positions per sequence.
std::size_t scratch_bytes(const dev_model& m, std::uint32_t chunk, std::uint32_t context);
// Carves `s` out of `base` (scratch_bytes(...) bytes).
void carve_scratch(const dev_model& m, std::uint32_t chunk, std::uint32_t context, void* base, scratch& s);

// The attention grids' width along the key axis (splits), sized by the positions a step attends over
// rather than by the context limit: a split block past the last position has nothing to do, and with
// the worker's default context (8192 positions: 256 decode splits a KV head) those blocks outnumbered
// the working ones ~10 to 1 (H200 run S19-6, Q4_K_M, 640 positions: decode −2 % at batch 1 and −7 % at
// batch 4 / 16, prefill −20 % with a 32,768-position context against a 704-position one). Each split's
// partials and the merge are computed the same way whatever the width, so the bits do not change.
// Decode: the smallest of 16·2^k splits that covers `positions`, at most s.max_splits (a graph per
// batch size and width, captured when first needed: five widths for an 8192-position context);
// prefill (not captured): exactly the splits `positions` needs. With
// `by_positions` false, the context's (the measuring / test switch cuda_engine_options::
// attention_grid_by_positions).
std::uint32_t decode_attention_splits(const scratch& s, std::uint32_t positions, bool by_positions);
std::uint32_t prefill_attention_splits(const scratch& s, std::uint32_t positions, bool by_positions);

// Decode step for `b` sequences whose inputs are already on the device (s.step_in: ids or
// from_sampled, seqs, tok_pos, sparams): enqueues the whole step, its attention over `attn_splits`
// splits a KV head (decode_attention_splits); logits land in s.logits [b][vocab].
void enqueue_decode(const pass_context& pc, std::uint32_t b, std::uint32_t attn_splits);

// One prefill chunk of `n` tokens of one sequence (inputs in the host mirror's p_* arrays), its
// attention over `attn_splits` splits (prefill_attention_splits). When `all_logits`, every row's
// logits go to `host_logits` ([n][vocab]); else only the last row's.
void run_prefill_chunk(const pass_context& pc, std::uint32_t n, std::uint32_t attn_splits, bool want_logits,
                       bool all_logits, float* host_logits);

// The CUDA graphs of the decode step, one per batch size and attention width.
class decode_graphs {
 public:
  ~decode_graphs();
  // Copies `inputs` (pinned) to s.step_in, then replays (or first captures) the step's graph.
  void launch(const pass_context& pc, const decode_step_inputs* inputs, std::uint32_t b, std::uint32_t attn_splits,
              bool use_graphs);

 private:
  std::map<std::pair<std::uint32_t, std::uint32_t>, cudaGraphExec_t> exec_;  // (b, attn_splits)
};

}  // namespace worker::adapters::cuda_detail

#endif  // WORKER_ORCD_HAVE_CUDA
