// The CUDA engine's passes: scratch layout, the decode step (captured as a CUDA graph per batch size)
// and the prefill chunk. Shapes: d = d_model, q_dim = n_head·head_dim, kv = n_head_kv·head_dim,
// ff = FFN width, b = decode batch (≤ 16), n = prefill tokens in this chunk.
#include "adapters/cuda_engine_state.hpp"

#if WORKER_ORCD_HAVE_CUDA

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gpu/attention.cuh"
#include "gpu/dequant.cuh"
#include "gpu/gemm.cuh"
#include "gpu/gpu_error.hpp"
#include "gpu/matvec.cuh"
#include "gpu/norm.cuh"
#include "gpu/rope.cuh"
#include "model/comma_list.hpp"

namespace worker::adapters::cuda_detail {

namespace {

using gpu::align_up;

// Decode-step fusions and measuring switches, read once per process from WORKER_ORCD_DECODE_FUSE
// (comma-separated tokens), so every decode step of the process runs the same path (batch invariance
// needs one attention split size per path). All fusions are bit-identical to the separate launches.
// - RoPE + KV store inside the attention kernel: ON (token norope gives it its own launch again); with
//   32-key splits it gained at batch 1 in every H100 run of session 4 (Q4_K_M +2.2 to +2.5 %,
//   Q8_0 +1.2 to +2.4 %, F16 +0.9 / +1.1 %; batch 4 and 16 within ±1.3 %: docs/performance.md).
// - Key positions per attention split: gpu::k_attn_split_decode (32), or 64 with token split64 (the
//   earlier default; this one changes the attention's summation order, not its accuracy).
// - The merge fusion stays off (token merge turns it on, for measuring): 1-5 % slower on the H200
//   (run 10), rope+merge −1 / −1.8 / −1 % at batch 1/4/16 on the H100 (session 3), −5 to −7 % on the
//   H200 in session 11 (S11-2, S11-7b).
// - Programmatic dependent launch of the small kernels (RMSNorm, attention split and merge, the int8
//   quantization): on for every model; tokens nopdl / pdl turn it off / on, noattnpdl / attnpdl the
//   attention's alone. The attention split kernel loads the cached K/V rows of earlier positions
//   before it waits for Q/K/V (their DRAM round trip off the chain) and the merge kernel is a
//   programmatic dependent too: H200 run S11-4, Q4_K_M 479.4 / 478.5 vs 464.1 / 463.7 tok/s; Q8_0
//   (PDL on for the other small kernels) 417.6 / 415.5 vs 400.4 with the attention's off. The rest:
//   S11-5 / S11-6, F16 b=1 256.7, 256.5 / 256.0 vs 255.0, 254.2 / 255.2, b=4 +1.0 to +2.2 %; Q4_K_M
//   within ±0.1 % at b=1, +0.1 to +0.6 % at b=4. (Until session 11 only models with Q8_0 FFN weights
//   had it: without the early K/V loads Q4_K_M lost 0.2-1.0 % and F16 0.1-0.6 % in sessions 5-7,
//   Q8_0 gained 1.2-3.6 %.)
// - V beside Q and K (a graph branch on the side stream) when V's weight type differs from theirs
//   (Qwen2.5 Q4_K_M: Q6_K V in 14 of 28 layers, which otherwise runs alone on 128 two-warp blocks
//   after Q + K); token novbranch turns it off. H200 session 8 (run S8-8): 422.1 / 418.6 vs 417.8 /
//   418.3 tok/s without it (Q8_0, F16: no such layers, unchanged).
// - The step's inputs (ids, sequence descriptors, positions, sampling parameters) in one host → device
//   copy. H200 run S12-6 against four copies at the graph's start plus the sampling parameters' own
//   copy after it: Q4_K_M 483.8 / 481.3 vs 481.2 / 476.5 tok/s, Q8_0 423.0 / 423.2 vs 419.2 / 421.1,
//   F16 within noise. (The copy moved out of the graph in session 22, so that pipelined steps can
//   stage their inputs in ring slots, and the measuring token `copies` went with it.)
// - With RoPE fused in, the block holding the new position takes that row's K/V from shared memory
//   and loads its other rows before the wait (token noownrow: after storing the new row). H200 run
//   S12-5: Q4_K_M 479.7 / 476.9 vs 477.0 / 475.3, Q8_0 418.4 / 416.9 vs 417.7 / 415.8.
// - Not kept (session 12, docs/performance.md): the attention as one launch of 8- or 16-block
//   thread-block clusters merging through distributed shared memory (−2 … −4 % at batch 1).
// - Early trigger (with PDL), batch 1: RMSNorm, the attention split kernel and the int8 quantization
//   let their programmatic dependent launch when they start, before their own wait, so the next
//   matvec's blocks become resident and request their weights while the kernel before the small one
//   still finishes (the dependent waits for the small kernel's completion, which implies its
//   producer's, before it reads anything; no arithmetic changes). H200 runs S13-1 / S13-3, batch 1:
//   Q4_K_M 487.0, 492.4 / 492.3 vs 484.4, 487.8 tok/s triggering after the wait; F16 259.2, 262.6 /
//   263.8 vs 257.3, 261.4; Q8_0 414.9, 419.4 / 418.6 vs 419.1, 418.7. At batch 4 it lost in every
//   pair (Q4_K_M 706.5, 705.9 / 707.5 vs 718.3, 721.2; Q8_0 −2 %, F16 −4 %), at 16 it was within
//   noise: batch 1 only. Tokens latetrig / earlytrig: never / at every batch size.
// - Superblock-minor activations at batch 1 (gpu/matvec.cuh sb_minor_byte): when every matrix that
//   reads int8 activations is Q4_K or Q6_K under the default one-column tuning, RMSNorm, the attention
//   and the post-SwiGLU quantization write the layout those fan-out kernels load with 8 lanes to a
//   128-byte line (the same values: the same bits). H200 runs S14-8 / S14-9, Q4_K_M batch 1: 494.9 vs
//   491.2, and 493.7 / 498.2 / 495.8 vs 492.9 / 486.7 / 488.3 tok/s (Q8_0 and F16 files do not qualify).
//   Token nosbminor: the standard layout.
// - wo and the FFN down projection are told that h (their residual) is final when they start
//   (matvec_out::residual_final), so the Q8_0 / F16 fan-out kernels copy it before their PDL wait.
//   H200 run S20-5, Q8_0 batch 1: 426.5 / 426.1 tok/s against 422.7 / 421.4 with token noresfinal.
// - Trigger points (session 21's block timelines, docs/performance.md: the next matvec's weight loads,
//   issued as soon as its blocks are resident, slow the small kernel still running). The merge kernel
//   lets wo launch once its partials have landed (mergemidtrig) instead of at its start
//   (mergestarttrig) where wo is a K-quant, at batch 1: H200 runs S21-5 / S21-6, Q4_K_M 516.7, 511.3,
//   514.3, 515.3, 510.4 tok/s against 506.5, 506.9, 506.4, 508.5, 506.5 (+1.3 %); Q8_0 lost 0.6 % in
//   five pairs the same way (its wo stays at the start), F16 ±0 (S21-10; it keeps the start). After the wait
//   (mergewaittrig) lost for Q8_0 (−2 %); attnnormmid / ffnnormmid (that RMSNorm's dependent launches
//   once the row is summed) lost 0.5 … 2 % for both: what the small kernel gains, the matvec loses.
struct decode_fusion {
  bool rope = true, merge = false, vbranch = true, own_row = true, sb_minor = true;
  int early_trigger = -1;  // -1: at batch 1 only, 0 never (latetrig), 1 always (earlytrig)
  bool pdl = true;       // RMSNorm, int8 quantization (and the attention unless attn_pdl says otherwise)
  int attn_pdl = -1;     // attention split + merge: -1 as pdl, 0 off (noattnpdl), 1 on (attnpdl)
  std::uint32_t split = gpu::k_attn_split_decode;
  bool residual_final = true;  // matvec_out::residual_final for wo and down (noresfinal: false)
  int merge_trigger = -1;      // attention_args::merge_trigger: -1 by wo's type (above), else 0 / 1 / 2 (tokens)
  bool ffn_norm_mid = false;   // rmsnorm_args::trigger_after_sum for the FFN RMSNorm (ffnnormmid)
  bool attn_norm_mid = false;  // the same for the attention RMSNorm (attnnormmid)
};

const decode_fusion& decode_settings() {
  static const decode_fusion f = [] {
    decode_fusion r;
    const char* e = std::getenv("WORKER_ORCD_DECODE_FUSE");
    for (const std::string& tok : model::split_comma_list(e ? e : "")) {
      if (tok == "norope") r.rope = false;
      else if (tok == "merge") r.merge = true;
      else if (tok == "pdl") r.pdl = true;
      else if (tok == "nopdl") r.pdl = false;
      else if (tok == "attnpdl") r.attn_pdl = 1;
      else if (tok == "noattnpdl") r.attn_pdl = 0;
      else if (tok == "split64") r.split = 64;
      else if (tok == "split32") r.split = 32;
      else if (tok == "novbranch") r.vbranch = false;
      else if (tok == "noownrow") r.own_row = false;
      else if (tok == "ownrow") r.own_row = true;
      else if (tok == "vbranch") r.vbranch = true;
      else if (tok == "latetrig") r.early_trigger = 0;
      else if (tok == "earlytrig") r.early_trigger = 1;
      else if (tok == "sbminor") r.sb_minor = true;
      else if (tok == "nosbminor") r.sb_minor = false;
      else if (tok == "noresfinal") r.residual_final = false;
      else if (tok == "resfinal") r.residual_final = true;
      else if (tok == "mergestarttrig") r.merge_trigger = 0;
      else if (tok == "mergewaittrig") r.merge_trigger = 1;
      else if (tok == "mergemidtrig") r.merge_trigger = 2;
      else if (tok == "ffnnormmid") r.ffn_norm_mid = true;
      else if (tok == "attnnormmid") r.attn_norm_mid = true;
      else throw gpu::gpu_error(gpu::gpu_error_code::invalid_argument, "WORKER_ORCD_DECODE_FUSE: unknown token " + tok);
    }
    return r;
  }();
  return f;
}

std::uint32_t decode_split() { return decode_settings().split; }

}  // namespace

namespace {

// Walks the scratch layout once for sizing and once for carving, so the two can never disagree.
template <typename F>
void walk_layout(const dev_model& m, std::uint32_t chunk, std::uint32_t context, F&& take) {
  const std::size_t max_splits = gpu::attn_splits_for(context, decode_split());
  const std::size_t max_splits_prefill = gpu::attn_splits_for(context, gpu::k_attn_split_prefill);
  const std::size_t B = k_max_batch, C = chunk;
  const std::size_t xw = std::max({m.d, m.q_dim, m.n_ff});
  const std::size_t xw_pad = align_up(xw, 256);
  const std::size_t aw = std::max(m.d, m.q_dim);
  const std::size_t QS = std::min<std::size_t>(C, k_query_slice);
  const std::size_t tile = std::min<std::size_t>(
      std::max(static_cast<std::size_t>(m.n_ff) * m.d, static_cast<std::size_t>(m.q_dim) * m.d), std::size_t{72} << 20);
  take("step_in", sizeof(decode_step_inputs));
  take("h", B * m.d * 4);
  take("xf", B * xw * 4);
  take("xq", B * xw_pad);
  take("xq_lo", B * xw_pad);
  take("xds", B * (xw_pad / 32) * sizeof(float4));
  take("q", B * m.q_dim * 4);
  take("k", B * m.kv_dim * 4);
  take("v", B * m.kv_dim * 4);
  take("act", B * m.n_ff * 4);
  take("att_po", B * m.n_head * max_splits * m.head_dim * 4);
  take("att_pml", B * m.n_head * max_splits * sizeof(float2));
  take("att_count", B * m.n_head_kv * 4);
  take("logits", B * m.vocab * 4);
  take("pen_tokens", B * 4096 * 4);
  take("pen_counts", B * 4096 * 4);
  take("sampled", k_step_ring * B * 4);
  take("keys", B * m.vocab * 4);
  take("keys_sorted", B * m.vocab * 4);
  take("sids", B * m.vocab * 4);
  take("sids_sorted", B * m.vocab * 4);
  take("offsets", (B + 1) * 4);
  take("argmax_v", B * gpu::k_argmax_blocks * 4);
  take("argmax_i", B * gpu::k_argmax_blocks * 4);
  take("argmax_done", B * 4);
  take("cub", gpu::sample_cub_temp_bytes(static_cast<std::uint32_t>(B), m.vocab));
  take("p_ids", C * 4);
  take("p_tok_seq", C * 4);
  take("p_tok_pos", C * 4);
  take("p_seq", sizeof(gpu::kv_seq_desc));
  take("ph", C * m.d * 4);
  take("a16", C * aw * 2);
  take("pq", C * m.q_dim * 4);
  take("pk", C * m.kv_dim * 4);
  take("pv", C * m.kv_dim * 4);
  take("pg", C * m.n_ff * 4);
  take("pu", C * m.n_ff * 4);
  take("act16", C * m.n_ff * 2);
  take("p_att_po", QS * m.n_head * max_splits_prefill * m.head_dim * 4);
  take("p_att_pml", QS * m.n_head * max_splits_prefill * sizeof(float2));
  take("tile", tile * 2);
  take("p_logits", k_logit_slice * m.vocab * 4);
}

// Inputs of a matvec reading the decode activation buffers (both the fp32 and the int8 copy).
gpu::matvec_x decode_x(const scratch& s, const float* f32, std::uint32_t ld_f32, std::uint32_t b) {
  gpu::matvec_x x;
  x.f32 = f32;
  x.ld_f32 = ld_f32;
  x.q8 = s.xq;
  x.q8_lo = s.xq_lo;
  x.ld_q8 = s.xw_pad;
  x.ds = s.xds;
  x.ld_ds = s.xw_pad / 32;
  x.ncols = b;
  return x;
}

gpu::rmsnorm_args norm_to_x(const scratch& s, float* h, std::uint32_t d, const float* w, std::uint32_t n, float eps,
                            bool pdl = false, bool early_trigger = false, bool sb_minor = false) {
  gpu::rmsnorm_args a;
  a.q8_sb_minor = sb_minor;
  a.pdl = pdl;
  a.early_trigger = pdl && early_trigger;
  a.h = h;
  a.ldh = d;
  a.weight = w;
  a.dim = d;
  a.n = n;
  a.eps = eps;
  a.out_f32 = s.xf;
  a.ld_f32 = s.xw;
  a.out_q8 = s.xq;
  a.out_q8_lo = s.xq_lo;
  a.ld_q8 = s.xw_pad;
  a.out_ds = s.xds;
  a.ld_ds = s.xw_pad / 32;
  return a;
}

// The tokens of one attention/RoPE launch: n queries (rows of q, q_dim apart) of the sequences in
// `seqs`, with their sequence indices and positions. Decode and prefill differ only in these buffers.
struct token_rows {
  float* q;
  const gpu::kv_seq_desc* seqs;
  const std::int32_t* token_seq;
  const std::int32_t* token_pos;
  std::uint32_t n;
};

// RoPE NEOX over all of q and k (n_rot = head_dim) and the K/V store of layer l.
gpu::rope_kv_args rope_args(const dev_model& m, const scratch& s, const token_rows& t, const float* k, const float* v,
                            std::uint32_t l) {
  gpu::rope_kv_args r;
  r.q = t.q;
  r.ldq = m.q_dim;
  r.k = k;
  r.ldk = m.kv_dim;
  r.v = v;
  r.ldv = m.kv_dim;
  r.cos_sin = s.rope;
  r.table_positions = s.rope_positions;
  r.seqs = t.seqs;
  r.token_seq = t.token_seq;
  r.token_pos = t.token_pos;
  r.layer = l;
  r.n = t.n;
  r.n_head = m.n_head;
  r.n_head_kv = m.n_head_kv;
  r.head_dim = m.head_dim;
  r.n_rot = m.head_dim;
  return r;
}

// Attention of layer l over the KV cache with `split` keys per split; the caller sets the outputs.
gpu::attention_args attention_over_cache(const dev_model& m, const token_rows& t, std::uint32_t l, std::uint32_t split,
                                         std::uint32_t max_splits, float* partial_o, float2* partial_ml) {
  gpu::attention_args a;
  a.q = t.q;
  a.ldq = m.q_dim;
  a.seqs = t.seqs;
  a.query_seq = t.token_seq;
  a.query_pos = t.token_pos;
  a.layer = l;
  a.nq = t.n;
  a.n_head = m.n_head;
  a.n_head_kv = m.n_head_kv;
  a.head_dim = m.head_dim;
  a.scale = m.scale;
  a.split = split;
  a.max_splits = max_splits;
  a.partial_o = partial_o;
  a.partial_ml = partial_ml;
  return a;
}

// Q, K, V projections with their biases; weights of equal type share one launch. With `branch` and
// a V of its own type after Q and K of one type, V runs on the side stream beside Q + K.
void qkv_matvec(const dev_layer& L, const gpu::matvec_x& x, const scratch& s, const dev_model& m, cudaStream_t st,
                const gpu::device_context* branch) {
  const gpu::matvec_out all[3] = {{L.wq, L.bq, s.q, m.q_dim, false},
                                  {L.wk, L.bk, s.k, m.kv_dim, false},
                                  {L.wv, L.bv, s.v, m.kv_dim, false}};
  if (branch && L.wq.type == L.wk.type && L.wv.type != L.wq.type) {
    branch->fork_side(st);
    try {
      gpu::matvec(std::span(&all[2], 1), x, branch->side_stream());
      gpu::matvec(std::span(all, 2), x, st);
    } catch (...) {
      // Join anyway, so that the caller's stream (and a capture in progress) never leaves the side
      // stream's work behind; the first error is the one reported.
      try {
        branch->join_side(st);
      } catch (...) {
      }
      throw;
    }
    branch->join_side(st);
    return;
  }
  bool done[3] = {false, false, false};
  for (int i = 0; i < 3; ++i) {
    if (done[i]) continue;
    gpu::matvec_out group[3];
    int n = 0;
    for (int j = i; j < 3; ++j) {
      if (!done[j] && all[j].w.type == all[i].w.type) {
        group[n++] = all[j];
        done[j] = true;
      }
    }
    gpu::matvec(std::span(group, static_cast<std::size_t>(n)), x, st);
  }
}

// Whether a batch-1 step can keep its int8 activations in the superblock-minor layout: every matrix of
// the step is Q4_K or Q6_K under the default one-column tuning, and every row length a multiple of 256.
bool sb_minor_decode(const dev_model& m) {
  auto ok = [](const gpu::device_matrix& w) { return gpu::matvec_accepts_sb_minor(w.type); };
  if (m.d % 256 != 0 || m.q_dim % 256 != 0 || m.n_ff % 256 != 0 || !ok(m.output)) return false;
  for (const dev_layer& L : m.layers) {
    for (const gpu::device_matrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.gate, &L.up, &L.down}) {
      if (!ok(*w)) return false;
    }
  }
  return true;
}

void copy_h2d(void* dst, const void* src, std::size_t bytes, cudaStream_t st) {
  WORKER_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, st));
}

}  // namespace

std::size_t scratch_bytes(const dev_model& m, std::uint32_t chunk, std::uint32_t context) {
  std::size_t total = 0;
  walk_layout(m, chunk, context, [&](std::string_view, std::size_t bytes) { total += align_up(bytes, 256); });
  return total;
}

void carve_scratch(const dev_model& m, std::uint32_t chunk, std::uint32_t context, void* base, scratch& s) {
  gpu::vram_region r(base, scratch_bytes(m, chunk, context));
  s.xw = std::max({m.d, m.q_dim, m.n_ff});
  s.xw_pad = static_cast<std::uint32_t>(align_up(s.xw, 256));
  s.aw = std::max(m.d, m.q_dim);
  s.chunk = chunk;
  s.max_splits = gpu::attn_splits_for(context, decode_split());
  s.max_splits_prefill = gpu::attn_splits_for(context, gpu::k_attn_split_prefill);
  walk_layout(m, chunk, context, [&](std::string_view name, std::size_t bytes) {
    void* p = r.carve(bytes, 256);
    auto set = [&](auto*& field) { field = static_cast<std::remove_reference_t<decltype(field)>>(p); };
    if (name == "step_in") {
      // Member addresses of the device struct, computed without touching device memory.
      auto* base = static_cast<std::byte*>(p);
      s.step_in = static_cast<decode_step_inputs*>(p);
      s.seqs = reinterpret_cast<gpu::kv_seq_desc*>(base + offsetof(decode_step_inputs, seqs));
      s.sparams = reinterpret_cast<gpu::sample_params*>(base + offsetof(decode_step_inputs, sparams));
      s.ids = reinterpret_cast<std::int32_t*>(base + offsetof(decode_step_inputs, ids));
      s.tok_seq = reinterpret_cast<std::int32_t*>(base + offsetof(decode_step_inputs, tok_seq));
      s.tok_pos = reinterpret_cast<std::int32_t*>(base + offsetof(decode_step_inputs, tok_pos));
      s.from_sampled = reinterpret_cast<std::int32_t*>(base + offsetof(decode_step_inputs, from_sampled));
    } else if (name == "h") set(s.h);
    else if (name == "xf") set(s.xf);
    else if (name == "xq") set(s.xq);
    else if (name == "xq_lo") set(s.xq_lo);
    else if (name == "xds") set(s.xds);
    else if (name == "q") set(s.q);
    else if (name == "k") set(s.k);
    else if (name == "v") set(s.v);
    else if (name == "act") set(s.act);
    else if (name == "att_po") set(s.att_po);
    else if (name == "att_pml") set(s.att_pml);
    else if (name == "att_count") {
      set(s.att_count);
      // The fused attention merge needs its counters at zero once; each use returns them to zero.
      WORKER_CUDA_CHECK(cudaMemset(p, 0, bytes));
    }
    else if (name == "logits") set(s.logits);
    else if (name == "pen_tokens") set(s.pen_tokens);
    else if (name == "pen_counts") set(s.pen_counts);
    else if (name == "sampled") set(s.sampled);
    else if (name == "keys") set(s.sws.keys);
    else if (name == "keys_sorted") set(s.sws.keys_sorted);
    else if (name == "sids") set(s.sws.ids);
    else if (name == "sids_sorted") set(s.sws.ids_sorted);
    else if (name == "offsets") set(s.sws.offsets);
    else if (name == "argmax_v") set(s.sws.argmax_v);
    else if (name == "argmax_i") set(s.sws.argmax_i);
    else if (name == "argmax_done") {
      set(s.sws.argmax_done);
      WORKER_CUDA_CHECK(cudaMemset(p, 0, bytes));  // the greedy argmax's counters start at zero, each use returns them there
    }
    else if (name == "cub") {
      s.sws.cub_temp = p;
      s.sws.cub_temp_bytes = bytes;
    } else if (name == "p_ids") set(s.p_ids);
    else if (name == "p_tok_seq") set(s.p_tok_seq);
    else if (name == "p_tok_pos") set(s.p_tok_pos);
    else if (name == "p_seq") set(s.p_seq);
    else if (name == "ph") set(s.ph);
    else if (name == "a16") set(s.a16);
    else if (name == "pq") set(s.pq);
    else if (name == "pk") set(s.pk);
    else if (name == "pv") set(s.pv);
    else if (name == "pg") set(s.pg);
    else if (name == "pu") set(s.pu);
    else if (name == "act16") set(s.act16);
    else if (name == "p_att_po") set(s.p_att_po);
    else if (name == "p_att_pml") set(s.p_att_pml);
    else if (name == "tile") {
      set(s.tile);
      s.tile_elems = bytes / 2;
    } else if (name == "p_logits") set(s.p_logits);
  });
  s.max_pen = k_max_batch * 4096;
}

std::uint32_t decode_attention_splits(const scratch& s, std::uint32_t positions, bool by_positions) {
  if (!by_positions) return s.max_splits;
  const std::uint32_t need = gpu::attn_splits_for(positions, decode_split());
  std::uint32_t width = 16;
  while (width < need && width < s.max_splits) width *= 2;
  return std::min(width, s.max_splits);
}

std::uint32_t prefill_attention_splits(const scratch& s, std::uint32_t positions, bool by_positions) {
  if (!by_positions) return s.max_splits_prefill;
  return std::min(gpu::attn_splits_for(positions, gpu::k_attn_split_prefill), s.max_splits_prefill);
}

void enqueue_decode(const pass_context& pc, std::uint32_t b, std::uint32_t attn_splits) {
  const decode_fusion& fuse = decode_settings();
  const dev_model& m = *pc.model;
  const bool pdl = fuse.pdl;
  const bool early = fuse.early_trigger == 1 || (fuse.early_trigger < 0 && b == 1);
  const scratch& s = *pc.s;
  const cudaStream_t st = pc.ctx->compute_stream();
  gpu::gather_rows_f32(m.token_embd, s.ids, b, s.h, m.d, st, s.from_sampled, s.sampled);
  const bool sbm = b == 1 && fuse.sb_minor && sb_minor_decode(m);
  gpu::matvec_x x = decode_x(s, s.xf, s.xw, b);
  x.sb_minor = sbm;
  gpu::matvec_x x_act = decode_x(s, s.act, m.n_ff, b);
  x_act.sb_minor = sbm;
  for (std::uint32_t l = 0; l < m.layers.size(); ++l) {
    const dev_layer& L = m.layers[l];
    gpu::rmsnorm_args an = norm_to_x(s, s.h, m.d, L.attn_norm, b, m.eps, pdl && l > 0, early && !fuse.attn_norm_mid, sbm);
    an.trigger_after_sum = fuse.attn_norm_mid;
    gpu::rmsnorm_fused(an, st);
    qkv_matvec(L, x, s, m, st, fuse.vbranch ? pc.ctx : nullptr);

    const token_rows tokens{s.q, s.seqs, s.tok_seq, s.tok_pos, b};
    gpu::attention_args a = attention_over_cache(m, tokens, l, decode_split(), attn_splits, s.att_po, s.att_pml);
    a.out = s.xf;
    a.ldo = s.xw;
    a.out_q8 = s.xq;
    a.out_q8_lo = s.xq_lo;
    a.ld_q8 = s.xw_pad;
    a.out_ds = s.xds;
    a.ld_ds = s.xw_pad / 32;
    a.q8_sb_minor = sbm;
    a.pdl = fuse.attn_pdl >= 0 ? fuse.attn_pdl == 1 : pdl;
    a.early_trigger = a.pdl && early;
    if (fuse.merge) a.merge_counters = s.att_count;
    const bool kquant_wo = L.wo.type == model::ggml_type::q4_k || L.wo.type == model::ggml_type::q6_k;
    a.merge_trigger = fuse.merge_trigger >= 0 ? fuse.merge_trigger : (b == 1 && kquant_wo ? 2 : 0);
    if (fuse.rope) {
      // RoPE + KV store inside the attention kernel (no launch of their own).
      a.k_new = s.k;
      a.ldk = m.kv_dim;
      a.v_new = s.v;
      a.ldv = m.kv_dim;
      a.cos_sin = s.rope;
      a.table_positions = s.rope_positions;
      a.own_row_in_smem = fuse.own_row;
    } else {
      gpu::rope_qk_store_kv(rope_args(m, s, tokens, s.k, s.v, l), st);
    }
    gpu::attention(a, st);

    // residual_final: h is final when wo (and below, down) starts. Its last writer (the previous layer's
    // down projection, the embedding gather; for down this layer's wo) completed before the RMSNorm
    // before the launch passed its wait, and nothing since (Q / K / V, attention; gate + up, the
    // quantization) writes h; with early triggers, a launch still starts only after that RMSNorm's
    // consumer passed its own wait.
    const gpu::matvec_out o{L.wo, nullptr, s.h, m.d, true, fuse.residual_final};
    gpu::matvec(std::span(&o, 1), x, st);

    gpu::rmsnorm_args fn = norm_to_x(s, s.h, m.d, L.ffn_norm, b, m.eps, pdl, early && !fuse.ffn_norm_mid, sbm);
    fn.trigger_after_sum = fuse.ffn_norm_mid;
    gpu::rmsnorm_fused(fn, st);
    gpu::matvec_swiglu(L.gate, L.up, x, s.act, m.n_ff, st);
    if (gpu::matvec_uses_q8(L.down.type)) {
      gpu::quantize_q8(s.act, m.n_ff, m.n_ff, b, s.xq, s.xq_lo, s.xw_pad, s.xds, s.xw_pad / 32, st, pdl, early, sbm);
    }
    const gpu::matvec_out dn{L.down, nullptr, s.h, m.d, true, fuse.residual_final};
    gpu::matvec(std::span(&dn, 1), x_act, st);
  }
  gpu::rmsnorm_fused(norm_to_x(s, s.h, m.d, m.output_norm, b, m.eps, pdl, early, sbm), st);
  const gpu::matvec_out lo{m.output, nullptr, s.logits, m.vocab, false};
  gpu::matvec(std::span(&lo, 1), x, st);
}

void run_prefill_chunk(const pass_context& pc, std::uint32_t n, std::uint32_t attn_splits, bool want_logits,
                       bool all_logits, float* host_logits) {
  const dev_model& m = *pc.model;
  const scratch& s = *pc.s;
  const host_mirror& hm = *pc.hm;
  const gpu::device_context& ctx = *pc.ctx;
  const cudaStream_t st = ctx.compute_stream();
  copy_h2d(s.p_ids, hm.p_ids, n * 4, st);
  copy_h2d(s.p_tok_pos, hm.p_tok_pos, n * 4, st);
  copy_h2d(s.p_seq, hm.p_seq, sizeof(gpu::kv_seq_desc), st);
  WORKER_CUDA_CHECK(cudaMemsetAsync(s.p_tok_seq, 0, n * 4, st));

  auto gemm = [&](const gpu::device_matrix& w, const __half* x, std::uint32_t ldx, float* y, std::uint32_t ldy,
                  bool acc) {
    gpu::gemm_args g;
    g.w = w;
    g.x = x;
    g.ldx = ldx;
    g.n = n;
    g.y = y;
    g.ldy = ldy;
    g.accumulate = acc;
    g.tile = s.tile;
    g.tile_elems = s.tile_elems;
    gpu::gemm_f16(ctx, g);
  };
  auto norm16 = [&](const float* w) {
    gpu::rmsnorm_args a;
    a.h = s.ph;
    a.ldh = m.d;
    a.weight = w;
    a.dim = m.d;
    a.n = n;
    a.eps = m.eps;
    a.out_f16 = s.a16;
    a.ld_f16 = s.aw;
    gpu::rmsnorm_fused(a, st);
  };

  gpu::gather_rows_f32(m.token_embd, s.p_ids, n, s.ph, m.d, st);
  for (std::uint32_t l = 0; l < m.layers.size(); ++l) {
    const dev_layer& L = m.layers[l];
    norm16(L.attn_norm);
    gemm(L.wq, s.a16, s.aw, s.pq, m.q_dim, false);
    gemm(L.wk, s.a16, s.aw, s.pk, m.kv_dim, false);
    gemm(L.wv, s.a16, s.aw, s.pv, m.kv_dim, false);

    gpu::rope_kv_args r = rope_args(m, s, {s.pq, s.p_seq, s.p_tok_seq, s.p_tok_pos, n}, s.pk, s.pv, l);
    r.q_bias = L.bq;
    r.k_bias = L.bk;
    r.v_bias = L.bv;
    gpu::rope_qk_store_kv(r, st);

    for (std::uint32_t q0 = 0; q0 < n; q0 += k_query_slice) {
      const std::uint32_t nq = std::min(k_query_slice, n - q0);
      const token_rows slice{s.pq + static_cast<std::size_t>(q0) * m.q_dim, s.p_seq, s.p_tok_seq + q0, s.p_tok_pos + q0, nq};
      gpu::attention_args a = attention_over_cache(m, slice, l, gpu::k_attn_split_prefill, attn_splits, s.p_att_po,
                                                   s.p_att_pml);
      a.out_f16 = s.a16 + static_cast<std::size_t>(q0) * s.aw;
      a.ld_f16 = s.aw;
      gpu::attention(a, st);
    }
    gemm(L.wo, s.a16, s.aw, s.ph, m.d, true);

    norm16(L.ffn_norm);
    gemm(L.gate, s.a16, s.aw, s.pg, m.n_ff, false);
    gemm(L.up, s.a16, s.aw, s.pu, m.n_ff, false);
    gpu::swiglu_to_f16(s.pg, s.pu, m.n_ff, n, m.n_ff, s.act16, m.n_ff, st);
    gemm(L.down, s.act16, m.n_ff, s.ph, m.d, true);
  }
  if (!want_logits) return;

  if (all_logits) {
    norm16(m.output_norm);
    for (std::uint32_t r0 = 0; r0 < n; r0 += k_logit_slice) {
      const std::uint32_t rows = std::min(k_logit_slice, n - r0);
      gpu::gemm_args g;
      g.w = m.output;
      g.x = s.a16 + static_cast<std::size_t>(r0) * s.aw;
      g.ldx = s.aw;
      g.n = rows;
      g.y = s.p_logits;
      g.ldy = m.vocab;
      g.tile = s.tile;
      g.tile_elems = s.tile_elems;
      gpu::gemm_f16(ctx, g);
      WORKER_CUDA_CHECK(cudaMemcpyAsync(host_logits + static_cast<std::size_t>(r0) * m.vocab, s.p_logits,
                                        static_cast<std::size_t>(rows) * m.vocab * 4, cudaMemcpyDeviceToHost, st));
      WORKER_CUDA_CHECK(cudaStreamSynchronize(st));
    }
  } else {
    // The last row through the decode path's norm + output matvec (one column).
    gpu::rmsnorm_fused(norm_to_x(s, s.ph + static_cast<std::size_t>(n - 1) * m.d, m.d, m.output_norm, 1, m.eps), st);
    const gpu::matvec_out lo{m.output, nullptr, s.p_logits, m.vocab, false};
    gpu::matvec(std::span(&lo, 1), decode_x(s, s.xf, s.xw, 1), st);
    WORKER_CUDA_CHECK(cudaMemcpyAsync(host_logits, s.p_logits, static_cast<std::size_t>(m.vocab) * 4,
                                      cudaMemcpyDeviceToHost, st));
    WORKER_CUDA_CHECK(cudaStreamSynchronize(st));
  }
}

namespace {

// Measuring switch WORKER_ORCD_GRAPH_DISABLE=pat[,pat...]: after instantiation, every kernel node of the
// decode graph whose (mangled) function name contains `pat` — or, for `pat@G`, also has grid.x == G —
// is disabled (an empty node: dependencies kept, no work). The step then runs WITHOUT those kernels,
// so its time shows what they cost on the critical path of the real graph (with its programmatic
// dependent launches), which per-kernel ncu durations cannot. The outputs are garbage: for timing
// runs only (gpu-host-run.sh --bench-variants off-rmsnorm ...), never for tokens.
void disable_nodes_for_measuring(cudaGraph_t g, cudaGraphExec_t exec) {
  static const std::string spec = [] {
    const char* e = std::getenv("WORKER_ORCD_GRAPH_DISABLE");
    return std::string(e ? e : "");
  }();
  if (spec.empty()) return;
  const std::vector<std::string> patterns = model::split_comma_list(spec);
  std::size_t n = 0;
  WORKER_CUDA_CHECK(cudaGraphGetNodes(g, nullptr, &n));
  std::vector<cudaGraphNode_t> nodes(n);
  WORKER_CUDA_CHECK(cudaGraphGetNodes(g, nodes.data(), &n));
  std::size_t disabled = 0, kernels = 0;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type{};
    WORKER_CUDA_CHECK(cudaGraphNodeGetType(node, &type));
    if (type != cudaGraphNodeTypeKernel) continue;
    ++kernels;
    cudaKernelNodeParams kp{};
    WORKER_CUDA_CHECK(cudaGraphKernelNodeGetParams(node, &kp));
    const char* name = nullptr;
    if (cudaFuncGetName(&name, kp.func) != cudaSuccess || !name) continue;
    const std::string fn(name);
    for (const std::string& pat : patterns) {
      const std::size_t sep = pat.find('@');
      const std::string sub = pat.substr(0, sep);
      if (sub.empty() || fn.find(sub) == std::string::npos) continue;
      if (sep != std::string::npos && std::to_string(kp.gridDim.x) != pat.substr(sep + 1)) continue;
      WORKER_CUDA_CHECK(cudaGraphNodeSetEnabled(exec, node, 0));
      ++disabled;
      break;
    }
  }
  std::fprintf(stderr, "WORKER_ORCD_GRAPH_DISABLE=%s: %zu of %zu kernel nodes disabled (timing only)\n", spec.c_str(),
               disabled, kernels);
}

}  // namespace

decode_graphs::~decode_graphs() {
  for (auto& [key, e] : exec_) {
    if (e) cudaGraphExecDestroy(e);
  }
}

void decode_graphs::launch(const pass_context& pc, const decode_step_inputs* inputs, std::uint32_t b,
                           std::uint32_t attn_splits, bool use_graphs) {
  const cudaStream_t st = pc.ctx->compute_stream();
  // One copy of the whole struct, whatever b, outside the graph: the source differs from step to step
  // (pipelined steps stage their inputs in their own ring slot while earlier steps run).
  copy_h2d(pc.s->step_in, inputs, sizeof(decode_step_inputs), st);
  if (!use_graphs) {
    enqueue_decode(pc, b, attn_splits);
    return;
  }
  cudaGraphExec_t& exec = exec_[{b, attn_splits}];
  if (!exec) {
    cudaGraph_t g = nullptr;
    WORKER_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    try {
      enqueue_decode(pc, b, attn_splits);
    } catch (...) {
      cudaStreamEndCapture(st, &g);
      if (g) cudaGraphDestroy(g);
      cudaGetLastError();  // an invalidated capture's error must not surface at the next launch check
      throw;
    }
    WORKER_CUDA_CHECK(cudaStreamEndCapture(st, &g));
    const cudaError_t err = cudaGraphInstantiate(&exec, g, 0);
    if (err != cudaSuccess) exec = nullptr;  // captured again next time
    if (err == cudaSuccess) {
      try {
        disable_nodes_for_measuring(g, exec);
      } catch (...) {
        cudaGraphDestroy(g);
        throw;
      }
    }
    cudaGraphDestroy(g);
    WORKER_CUDA_CHECK(err);
  }
  WORKER_CUDA_CHECK(cudaGraphLaunch(exec, st));
}

}  // namespace worker::adapters::cuda_detail

#endif  // WORKER_ORCD_HAVE_CUDA
