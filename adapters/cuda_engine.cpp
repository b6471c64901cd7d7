// The CUDA engine (see cuda_engine.hpp): construction (pre-flight, weights, scratch, RoPE table), KV
// slots, and the engine interface on top of the passes in cuda_engine_passes.cpp.
#include "adapters/cuda_engine.hpp"

#if WORKER_ORCD_HAVE_CUDA

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <variant>

#include "adapters/cuda_engine_state.hpp"
#include "adapters/kv_slots.hpp"
#include "cpu/rope.hpp"
#include "gpu/attention.cuh"
#include "gpu/gpu_error.hpp"
#include "model/gguf.hpp"

namespace worker::adapters {

namespace {

using namespace cuda_detail;

engine_error to_engine_error(const gpu::gpu_error& e) {
  switch (e.code()) {
    case gpu::gpu_error_code::vram_oom:
    case gpu::gpu_error_code::insufficient_vram: return engine_error(engine_error_code::vram_oom, e.what());
    case gpu::gpu_error_code::invalid_argument: return engine_error(engine_error_code::internal, e.what());
    default: return engine_error(engine_error_code::device_error, e.what());
  }
}

struct pinned_block {
  void* p = nullptr;
  ~pinned_block() { if (p) cudaFreeHost(p); }
};

class cuda_engine_impl final : public cuda_engine {
 public:
  cuda_engine_impl(const std::filesystem::path& path, const cuda_engine_options& opt)
      : opt_(opt), ctx_(opt.device), arena_(opt.device), file_(model::gguf_file::open(path)),
        model_(load_decoder_model(file_, opt.adapter)) {
    bind_dims();
    context_limit_ = std::min(opt.max_context ? opt.max_context : model_.n_ctx_train, model_.n_ctx_train);
    chunk_ = std::max<std::uint32_t>(1, opt.prefill_chunk);
    slots_ = kv_slot_table(opt.max_sequences, context_limit_, dm_.vocab);
    kv_mem_.assign(opt.max_sequences, nullptr);
    last_step_.assign(opt.max_sequences, step_ref{});

    // Pre-flight: weights + planned KV + scratch + RoPE table + headroom against free VRAM.
    gpu::vram_plan plan;
    plan.weights = gpu::weights_device_bytes(file_);
    plan.kv = opt.kv_plan_bytes ? opt.kv_plan_bytes
                                : std::uint64_t{opt.max_sequences} * std::min<std::uint32_t>(1024, context_limit_) *
                                      kv_bytes_per_position();
    plan.scratch = scratch_bytes(dm_, chunk_, context_limit_) + rope_bytes();
    plan.headroom = 256ull << 20;
    gpu::preflight_check(plan, gpu::device_memory().free_bytes);

    gpu::load_progress_fn progress;
    if (opt.on_load_progress) {
      progress = [&](const gpu::load_progress& p) {
        opt.on_load_progress(p.bytes_done, p.bytes_total, p.tensors_done, p.tensors_total, gpu::to_string(p.phase));
      };
    }
    weights_ = gpu::load_weights(path, file_, arena_, ctx_, {}, progress);
    report_.seconds = weights_.stats().seconds;
    report_.gb_per_s = weights_.stats().gb_per_s;
    report_.file_bytes = weights_.stats().file_bytes;
    report_.device_bytes = weights_.stats().device_bytes;
    bind_weights();

    void* sb = arena_.allocate(scratch_bytes(dm_, chunk_, context_limit_), "scratch");
    carve_scratch(dm_, chunk_, context_limit_, sb, s_);
    upload_rope_table();
    alloc_host_mirror();

    summary_.architecture = model_.architecture;
    summary_.name = std::string(file_.get_string("general.name").value_or(path.filename().string()));
    summary_.quantization = quantization_name();
    summary_.vocab_size = model_.n_vocab;
    summary_.context_length = model_.n_ctx_train;
    summary_.weight_bytes = report_.file_bytes;
    summary_.device = "cuda:" + std::to_string(opt.device) + " (" + ctx_.info().name + ")";
    pc_ = pass_context{&ctx_, &dm_, &s_, &hm_};
  }

  ~cuda_engine_impl() override { cudaDeviceSynchronize(); }

  // --- engine -------------------------------------------------------------------------------------

  const model_summary& summary() const override { return summary_; }

  sequence_handle open_sequence(std::uint32_t max_positions) override {
    select_device();
    slots_.check_open(max_positions);
    const std::uint32_t i = slots_.free_slot();
    try {
      std::lock_guard lock(alloc_mutex_);
      kv_mem_[i] = arena_.allocate(max_positions * kv_bytes_per_position(), "kv");
    } catch (const gpu::gpu_error& e) {
      throw to_engine_error(e);
    }
    slots_.open(i, max_positions);
    last_step_[i] = step_ref{};
    return sequence_handle{i};
  }

  void close_sequence(sequence_handle sequence) noexcept override {
    if (!slots_.is_open(sequence)) return;
    cudaSetDevice(opt_.device);
    cudaStreamSynchronize(ctx_.compute_stream());
    {
      std::lock_guard lock(alloc_mutex_);
      arena_.release(kv_mem_[sequence.slot]);
    }
    kv_mem_[sequence.slot] = nullptr;
    last_step_[sequence.slot] = step_ref{};
    slots_.close(sequence);
  }

  std::uint32_t sequence_length(sequence_handle sequence) const override { return slots_.at(sequence).length; }

  std::vector<forward_output> forward(std::span<const forward_item> items) override {
    select_device();
    slots_.validate(items);
    std::vector<forward_output> out(items.size());
    try {
      // Prefill items one at a time, in chunks; decode items (one token) batched through the graph.
      std::vector<std::size_t> decode;
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (items[i].tokens.size() == 1) {
          decode.push_back(i);
          continue;
        }
        prefill(items[i], out[i]);
      }
      for (std::size_t d0 = 0; d0 < decode.size(); d0 += k_max_batch) {
        const std::uint32_t b = static_cast<std::uint32_t>(std::min<std::size_t>(k_max_batch, decode.size() - d0));
        std::vector<sequence_handle> seqs;
        std::vector<token_id> toks;
        for (std::uint32_t j = 0; j < b; ++j) {
          seqs.push_back(items[decode[d0 + j]].sequence);
          toks.push_back(items[decode[d0 + j]].tokens[0]);
        }
        run_decode(seqs, toks);
        for (std::uint32_t j = 0; j < b; ++j) {
          forward_output& o = out[decode[d0 + j]];
          o.rows = 1;
          o.logits.resize(dm_.vocab);
        }
        for (std::uint32_t j = 0; j < b; ++j) {
          WORKER_CUDA_CHECK(cudaMemcpyAsync(out[decode[d0 + j]].logits.data(), s_.logits + static_cast<std::size_t>(j) * dm_.vocab,
                                            static_cast<std::size_t>(dm_.vocab) * 4, cudaMemcpyDeviceToHost, ctx_.compute_stream()));
        }
        WORKER_CUDA_CHECK(cudaStreamSynchronize(ctx_.compute_stream()));
      }
    } catch (const gpu::gpu_error& e) {
      throw to_engine_error(e);
    }
    slots_.commit(items);
    // The sequences' latest tokens came through forward(): a later step takes its input from the caller.
    for (const auto& it : items) last_step_[it.sequence.slot] = step_ref{};
    return out;
  }

  // --- cuda_engine --------------------------------------------------------------------------------

  std::vector<token_id> decode_sample(std::span<const cuda_sample_item> items) override {
    if (items.empty()) throw engine_error(engine_error_code::invalid_argument, "decode with no items");
    std::vector<token_id> result;
    for (std::size_t d0 = 0; d0 < items.size(); d0 += k_max_batch) {
      const std::size_t b = std::min<std::size_t>(k_max_batch, items.size() - d0);
      const auto toks = decode_collect(decode_enqueue(items.subspan(d0, b)));
      result.insert(result.end(), toks.begin(), toks.end());
    }
    return result;
  }

  decode_ticket decode_enqueue(std::span<const cuda_sample_item> items) override {
    if (items.empty() || items.size() > k_max_batch) {
      throw engine_error(engine_error_code::invalid_argument,
                         "a decode step takes 1 to " + std::to_string(k_max_batch) + " items, got " + std::to_string(items.size()));
    }
    select_device();
    const auto b = static_cast<std::uint32_t>(items.size());
    const decode_ticket ticket = next_ticket_;
    const auto r = static_cast<std::uint32_t>(ticket % k_step_ring);
    std::vector<forward_item> fi;
    std::vector<std::int32_t> from(b, -1);
    for (std::uint32_t j = 0; j < b; ++j) {
      const cuda_sample_item& it = items[j];
      // A token the previous step samples is not known here: validate() checks a stand-in in range.
      fi.push_back(forward_item{it.sequence, std::span(it.token_from_previous_step ? &k_stand_in_token : &it.token, 1), false});
      if (!it.token_from_previous_step) continue;
      if (!slots_.is_open(it.sequence)) break;  // validate() below says so
      const step_ref& prev = last_step_[it.sequence.slot];
      if (prev.ticket == 0 || ticket - prev.ticket > k_step_ring) {
        throw engine_error(engine_error_code::invalid_argument,
                           "token_from_previous_step: the sequence has no decode step among the last " +
                               std::to_string(k_step_ring) + " enqueued");
      }
      if (penalties_active(it.params)) {
        throw engine_error(engine_error_code::invalid_argument,
                           "token_from_previous_step with penalties: their window needs the token on the host");
      }
      from[j] = static_cast<std::int32_t>((prev.ticket % k_step_ring) * k_max_batch + prev.row);
    }
    slots_.validate(fi);
    try {
      // Ring slot r last served the step k_step_ring tickets ago: its inputs and sampled ids are free
      // once that step is done (dropped if the caller never collected it).
      step_slot& slot = ring_[r];
      if (slot.ticket != 0 && !slot.collected) WORKER_CUDA_CHECK(cudaEventSynchronize(slot.done));
      slot.collected = true;
      decode_step_inputs& in = *hm_.ring_in[r];
      std::uint32_t positions = 0;  // the longest sequence's, with the new token
      for (std::uint32_t j = 0; j < b; ++j) {
        const kv_slot_state& st = slots_.at(items[j].sequence);
        in.ids[j] = items[j].token_from_previous_step ? 0 : items[j].token;
        in.from_sampled[j] = from[j];
        in.seqs[j] = desc_of(items[j].sequence);
        in.tok_seq[j] = static_cast<std::int32_t>(j);
        in.tok_pos[j] = static_cast<std::int32_t>(st.length);
        positions = std::max(positions, st.length + 1);
      }
      const sampling_plan plan = stage_sampling(items, in.sparams);
      graphs_.launch(pc_, &in, b, decode_attention_splits(s_, positions, opt_.attention_grid_by_positions), opt_.cuda_graphs);
      const cudaStream_t st = ctx_.compute_stream();
      if (plan.pen > 0) {
        WORKER_CUDA_CHECK(cudaMemcpyAsync(s_.pen_tokens, hm_.pen_tokens, plan.pen * 4, cudaMemcpyHostToDevice, st));
        WORKER_CUDA_CHECK(cudaMemcpyAsync(s_.pen_counts, hm_.pen_counts, plan.pen * 4, cudaMemcpyHostToDevice, st));
      }
      std::int32_t* sampled = s_.sampled + std::size_t{r} * k_max_batch;
      gpu::sample_rows(s_.logits, b, dm_.vocab, s_.sparams, s_.pen_tokens, s_.pen_counts, plan.pen > 0, plan.any_sampled,
                       plan.any_sorted, s_.sws, sampled, st);
      WORKER_CUDA_CHECK(cudaMemcpyAsync(hm_.ring_sampled[r], sampled, b * 4, cudaMemcpyDeviceToHost, st));
      WORKER_CUDA_CHECK(cudaEventRecord(slot.done, st));
      slot.ticket = ticket;
      slot.rows = b;
      slot.collected = false;
    } catch (const gpu::gpu_error& e) {
      throw to_engine_error(e);
    }
    slots_.commit(fi);
    for (std::uint32_t j = 0; j < b; ++j) last_step_[items[j].sequence.slot] = step_ref{ticket, j};
    ++next_ticket_;
    return ticket;
  }

  std::vector<token_id> decode_collect(decode_ticket ticket) override {
    step_slot& slot = ring_[static_cast<std::uint32_t>(ticket % k_step_ring)];
    if (ticket == 0 || slot.ticket != ticket || slot.collected) {
      throw engine_error(engine_error_code::invalid_argument,
                         "decode ticket " + std::to_string(ticket) + " is not in flight (collected, dropped or never issued)");
    }
    select_device();
    try {
      WORKER_CUDA_CHECK(cudaEventSynchronize(slot.done));
    } catch (const gpu::gpu_error& e) {
      throw to_engine_error(e);
    }
    slot.collected = true;
    const std::int32_t* sampled = hm_.ring_sampled[ticket % k_step_ring];
    std::vector<token_id> out(sampled, sampled + slot.rows);
    for (const token_id t : out) {
      if (t < 0) throw engine_error(engine_error_code::invalid_argument, "no finite logit to sample from");
    }
    return out;
  }

  const cuda_load_report& load_report() const override { return report_; }

  std::vector<cuda_allocation> allocations() const override {
    std::vector<cuda_allocation> v;
    for (const auto& a : arena_.allocations()) v.push_back({a.ptr, a.bytes, a.tag});
    return v;
  }

  std::uint64_t vram_bytes() const override { return arena_.bytes_in_use(); }

  // Driver queries only (cudaMemGetInfo, cudaPointerGetAttributes): nothing waits for the streams.
  memory_report memory_state() const override {
    memory_report r;
    r.on_device = true;
    cudaSetDevice(opt_.device);  // the calling thread's current device, for cudaMemGetInfo
    std::size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      r.device_total = total_bytes;
      r.device_used = total_bytes - free_bytes;
    } else {
      cudaGetLastError();
    }
    std::lock_guard lock(alloc_mutex_);
    bool all_device = true;
    for (const auto& a : arena_.allocations()) {
      ++r.allocations;
      r.engine_bytes += a.bytes;
      all_device = all_device && gpu::is_device_resident(a.ptr, opt_.device);
    }
    r.resident = all_device && r.allocations > 0;
    return r;
  }
  int device_index() const override { return opt_.device; }

  void inject_kv_allocation_failure(bool on) override {
    if (on) {
      arena_.set_failure_injector([](std::size_t, std::string_view tag) { return tag == "kv"; });
    } else {
      arena_.set_failure_injector(nullptr);
    }
  }

  std::uint64_t decode_bytes_per_step(std::span<const sequence_handle> sequences) const override {
    std::uint64_t bytes = 0;
    for (const auto& t : weights_.tensors()) {
      if (t.name == "token_embd.weight") {
        bytes += sequences.size() * model::row_bytes(t.type, static_cast<std::size_t>(t.ne[0]));  // one row each
      } else {
        bytes += t.bytes;
      }
    }
    for (const auto& s : sequences) bytes += std::uint64_t{slots_.at(s).length + 1} * kv_bytes_per_position();
    return bytes;
  }

 private:
  // The runtime's current device is per thread, and the engine is called from whichever thread runs
  // the request (the worker's inference actor is not the thread that loaded the model).
  void select_device() const {
    const cudaError_t err = cudaSetDevice(opt_.device);
    if (err != cudaSuccess) {
      throw engine_error(engine_error_code::device_error,
                         "cudaSetDevice(" + std::to_string(opt_.device) + "): " + cudaGetErrorString(err));
    }
  }

  std::uint64_t kv_bytes_per_position() const { return std::uint64_t{dm_.layers.size()} * 2 * dm_.kv_dim * 2; }
  std::uint64_t rope_bytes() const { return std::uint64_t{context_limit_} * (dm_.head_dim / 2) * sizeof(float2); }

  void bind_dims() {
    if (model_.layers.empty()) throw engine_error(engine_error_code::internal, "model has no layers");
    const auto& a0 = model_.layers[0].attention;
    for (const auto& layer : model_.layers) {
      if (!std::holds_alternative<dense_ffn_block>(layer.ffn)) {
        throw engine_error(engine_error_code::internal,
                           "the CUDA engine runs dense-FFN models (qwen2) so far; '" + model_.architecture +
                               "' needs the MoE kernels of a later part");
      }
      const auto& a = layer.attention;
      if (a.sinks.present() || a.attn.window != 0 || a.bo.present() || a.rope.ext_factor != 0.0f ||
          a.rope.style != cpu::rope_style::neox || a.attn.head_dim != a0.attn.head_dim) {
        throw engine_error(engine_error_code::internal,
                           "the CUDA engine does not implement this attention variant (sinks, window, YaRN, output bias)");
      }
    }
    dm_.d = model_.d_model;
    dm_.n_head = a0.attn.n_head;
    dm_.n_head_kv = a0.attn.n_head_kv;
    dm_.head_dim = a0.attn.head_dim;
    dm_.q_dim = dm_.n_head * dm_.head_dim;
    dm_.kv_dim = dm_.n_head_kv * dm_.head_dim;
    dm_.n_ff = std::get<dense_ffn_block>(model_.layers[0].ffn).n_ff;
    dm_.vocab = model_.n_vocab;
    dm_.eps = model_.norm_eps;
    dm_.scale = a0.attn.scale;
    if (dm_.d % 256 != 0 || dm_.n_ff % 256 != 0 || dm_.q_dim % 32 != 0) {
      // K-quant rows need multiples of 256, the int8 activation blocks multiples of 32.
      if (dm_.d % 32 != 0 || dm_.n_ff % 32 != 0) {
        throw engine_error(engine_error_code::internal, "model widths must be multiples of 32 for the CUDA kernels");
      }
    }
  }

  gpu::device_matrix mat(const tensor_ref& t) const { return weights_.at(t.name).matrix; }
  const float* vec(const tensor_ref& t) const {
    if (!t.present()) return nullptr;
    const auto& lt = weights_.at(t.name);
    if (lt.type != model::ggml_type::f32) throw engine_error(engine_error_code::internal, t.name + " must be F32");
    return static_cast<const float*>(lt.base);
  }

  void bind_weights() {
    dm_.token_embd = mat(model_.token_embd);
    dm_.output = mat(model_.output);
    dm_.output_norm = vec(model_.output_norm);
    for (const auto& layer : model_.layers) {
      const auto& a = layer.attention;
      const auto& f = std::get<dense_ffn_block>(layer.ffn);
      dev_layer L;
      L.attn_norm = vec(a.norm);
      L.wq = mat(a.wq);
      L.wk = mat(a.wk);
      L.wv = mat(a.wv);
      L.wo = mat(a.wo);
      L.bq = vec(a.bq);
      L.bk = vec(a.bk);
      L.bv = vec(a.bv);
      L.ffn_norm = vec(f.norm);
      L.gate = mat(f.gate);
      L.up = mat(f.up);
      L.down = mat(f.down);
      dm_.layers.push_back(L);
    }
  }

  // cos/sin of every position from the CPU reference (bit-identical angles on both backends).
  void upload_rope_table() {
    const cpu::rope_params& rp = model_.layers[0].attention.rope;
    const std::uint32_t half = dm_.head_dim / 2;
    std::vector<float2> table(static_cast<std::size_t>(context_limit_) * half);
    std::vector<float> c(half), sn(half);
    for (std::uint32_t p = 0; p < context_limit_; ++p) {
      cpu::rope_angles(rp, p, c.data(), sn.data());
      for (std::uint32_t i = 0; i < half; ++i) table[static_cast<std::size_t>(p) * half + i] = make_float2(c[i], sn[i]);
    }
    void* dev = arena_.allocate(table.size() * sizeof(float2), "rope");
    WORKER_CUDA_CHECK(cudaMemcpy(dev, table.data(), table.size() * sizeof(float2), cudaMemcpyHostToDevice));
    s_.rope = static_cast<const float2*>(dev);
    s_.rope_positions = context_limit_;
  }

  void alloc_host_mirror() {
    const std::size_t B = k_max_batch, C = chunk_;
    const std::size_t bytes = (1 + k_step_ring) * (sizeof(decode_step_inputs) + 16) + 2 * std::size_t{s_.max_pen} * 4 +
                              k_step_ring * (B * 4 + 16) + 2 * C * 4 + sizeof(gpu::kv_seq_desc) + 1024;
    WORKER_CUDA_CHECK(cudaMallocHost(&host_block_.p, bytes));
    auto* p = static_cast<std::byte*>(host_block_.p);
    auto take = [&](auto*& field, std::size_t n) {
      field = reinterpret_cast<std::remove_reference_t<decltype(field)>>(p);
      p += (n + 15) / 16 * 16;
    };
    take(hm_.step_in, sizeof(decode_step_inputs));
    new (hm_.step_in) decode_step_inputs{};
    hm_.seqs = hm_.step_in->seqs;
    hm_.ids = hm_.step_in->ids;
    hm_.tok_seq = hm_.step_in->tok_seq;
    hm_.tok_pos = hm_.step_in->tok_pos;
    take(hm_.p_seq, sizeof(gpu::kv_seq_desc));
    take(hm_.pen_tokens, std::size_t{s_.max_pen} * 4);
    take(hm_.pen_counts, std::size_t{s_.max_pen} * 4);
    for (std::uint32_t r = 0; r < k_step_ring; ++r) {
      take(hm_.ring_in[r], sizeof(decode_step_inputs));
      new (hm_.ring_in[r]) decode_step_inputs{};
      take(hm_.ring_sampled[r], B * 4);
    }
    take(hm_.p_ids, C * 4);
    take(hm_.p_tok_pos, C * 4);
  }

  std::string quantization_name() const {
    static const std::map<std::uint64_t, std::string> names = {{0, "F32"},   {1, "F16"},     {2, "Q4_0"},
                                                               {7, "Q8_0"},  {8, "Q5_0"},    {15, "Q4_K_M"},
                                                               {17, "Q5_K_M"}, {18, "Q6_K"}, {32, "BF16"}};
    const auto ft = file_.get_uint("general.file_type");
    if (ft) {
      const auto it = names.find(*ft);
      if (it != names.end()) return it->second;
    }
    return std::string(model::type_name(dm_.output.type));
  }

  gpu::kv_seq_desc desc_of(sequence_handle sequence) const {
    gpu::kv_seq_desc d;
    d.base = static_cast<__half*>(kv_mem_[sequence.slot]);
    d.capacity = static_cast<std::int32_t>(slots_.at(sequence).capacity);
    return d;
  }

  void run_decode(const std::vector<sequence_handle>& seqs, const std::vector<token_id>& toks) {
    const auto b = static_cast<std::uint32_t>(seqs.size());
    WORKER_CUDA_CHECK(cudaStreamSynchronize(ctx_.compute_stream()));  // the mirror is free again
    std::uint32_t positions = 0;  // the longest sequence's, with the new token
    for (std::uint32_t j = 0; j < b; ++j) {
      hm_.ids[j] = toks[j];
      hm_.step_in->from_sampled[j] = -1;
      hm_.seqs[j] = desc_of(seqs[j]);
      hm_.tok_seq[j] = static_cast<std::int32_t>(j);
      hm_.tok_pos[j] = static_cast<std::int32_t>(slots_.at(seqs[j]).length);
      positions = std::max(positions, slots_.at(seqs[j]).length + 1);
    }
    graphs_.launch(pc_, hm_.step_in, b, decode_attention_splits(s_, positions, opt_.attention_grid_by_positions),
                   opt_.cuda_graphs);
  }

  void prefill(const forward_item& item, forward_output& out) {
    const kv_slot_state& s = slots_.at(item.sequence);
    const auto n_total = static_cast<std::uint32_t>(item.tokens.size());
    out.rows = item.all_logits ? n_total : 1;
    out.logits.resize(static_cast<std::size_t>(out.rows) * dm_.vocab);
    for (std::uint32_t c0 = 0; c0 < n_total; c0 += chunk_) {
      const std::uint32_t n = std::min(chunk_, n_total - c0);
      WORKER_CUDA_CHECK(cudaStreamSynchronize(ctx_.compute_stream()));
      for (std::uint32_t t = 0; t < n; ++t) {
        hm_.p_ids[t] = item.tokens[c0 + t];
        hm_.p_tok_pos[t] = static_cast<std::int32_t>(s.length + c0 + t);
      }
      *hm_.p_seq = desc_of(item.sequence);
      const bool last = c0 + n == n_total;
      float* dst = item.all_logits ? out.logits.data() + static_cast<std::size_t>(c0) * dm_.vocab : out.logits.data();
      const std::uint32_t splits = prefill_attention_splits(s_, s.length + c0 + n, opt_.attention_grid_by_positions);
      run_prefill_chunk(pc_, n, splits, item.all_logits || last, item.all_logits, dst);
    }
    WORKER_CUDA_CHECK(cudaStreamSynchronize(ctx_.compute_stream()));
  }

  // What the sampling kernels of a step need besides its inputs: penalty pairs staged, which kernels run.
  struct sampling_plan {
    std::uint32_t pen = 0;
    bool any_sampled = false, any_sorted = false;
  };

  // Sampling parameters to `out` (a step's pinned inputs, copied with the others) and penalty windows to
  // the mirror's one pair of penalty arrays — after the stream is idle, since an earlier step's copies
  // of them may still be queued (a step with penalties does not overlap the one before it).
  sampling_plan stage_sampling(std::span<const cuda_sample_item> items, gpu::sample_params* out) {
    const auto b = static_cast<std::uint32_t>(items.size());
    std::uint32_t pen = 0;
    bool any_sampled = false, any_sorted = false;
    bool synced = false;
    for (std::uint32_t j = 0; j < b; ++j) {
      const sampling_params& p = items[j].params;
      gpu::sample_params& g = out[j];
      g = gpu::sample_params{};
      g.temperature = p.temperature;
      g.top_k = p.top_k;
      g.top_p = p.top_p;
      g.min_p = p.min_p;
      g.repetition_penalty = p.repetition_penalty;
      g.presence_penalty = p.presence_penalty;
      g.frequency_penalty = p.frequency_penalty;
      g.seed = p.seed;
      // The index the sampled token will have: after the history and the input token.
      g.position = items[j].history.size() + (items[j].token_from_previous_step ? 1 : 0);
      g.penalty_begin = pen;
      any_sampled = any_sampled || p.temperature > 0.0f;
      any_sorted = any_sorted || (p.temperature > 0.0f && (p.top_k > 0 || p.top_p < 1.0f));
      if (penalties_active(p) && !items[j].history.empty()) {
        const auto h = items[j].history;
        const std::size_t n = p.penalty_last_n == 0 ? h.size() : std::min<std::size_t>(p.penalty_last_n, h.size());
        std::unordered_map<token_id, std::int32_t> counts;
        for (const token_id t : h.subspan(h.size() - n)) ++counts[t];
        if (pen + counts.size() > s_.max_pen) {
          throw engine_error(engine_error_code::invalid_argument, "penalty window too large for the GPU sampler");
        }
        if (!synced) {
          WORKER_CUDA_CHECK(cudaStreamSynchronize(ctx_.compute_stream()));
          synced = true;
        }
        for (const auto& [t, c] : counts) {
          hm_.pen_tokens[pen] = t;
          hm_.pen_counts[pen] = c;
          ++pen;
        }
      }
      g.penalty_count = pen - g.penalty_begin;
    }
    return sampling_plan{pen, any_sampled, any_sorted};
  }

  // The step a sequence's latest decode_enqueue was (ticket 0: none since it opened or ran forward()).
  struct step_ref {
    decode_ticket ticket = 0;
    std::uint32_t row = 0;
  };
  // One ring slot: the step it serves (its inputs in hm_.ring_in, its sampled ids in s_.sampled and
  // hm_.ring_sampled) and the event after that step's ids reached pinned memory.
  struct step_slot {
    decode_ticket ticket = 0;
    std::uint32_t rows = 0;
    bool collected = true;
    cudaEvent_t done = nullptr;
  };
  struct step_ring {
    step_slot slots[k_step_ring];
    step_ring() {
      for (auto& s : slots) WORKER_CUDA_CHECK(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
    }
    ~step_ring() {
      for (auto& s : slots) {
        if (s.done) cudaEventDestroy(s.done);
      }
    }
    step_ring(const step_ring&) = delete;
    step_ring& operator=(const step_ring&) = delete;
    step_slot& operator[](std::uint32_t i) { return slots[i]; }
  };
  static constexpr token_id k_stand_in_token = 0;
  static_assert(k_max_batch == k_decode_batch_max, "the interface's promise is the kernels' batch");

  cuda_engine_options opt_;
  gpu::device_context ctx_;
  gpu::vram_arena arena_;
  model::gguf_file file_;
  decoder_model model_;
  dev_model dm_;
  gpu::weight_store weights_;
  scratch s_;
  host_mirror hm_;
  pinned_block host_block_;
  pass_context pc_;
  decode_graphs graphs_;
  step_ring ring_;  // after ctx_: its events belong to the engine's device
  std::vector<step_ref> last_step_;  // per KV slot
  decode_ticket next_ticket_ = 1;
  kv_slot_table slots_;
  std::vector<void*> kv_mem_;  // per slot: its KV block (arena allocation), null when closed
  // Held around arena allocations and releases made after loading, and by memory_state() for its
  // whole check, so that a pointer it inspects cannot be freed under it.
  mutable std::mutex alloc_mutex_;
  std::uint32_t context_limit_ = 0;
  std::uint32_t chunk_ = 0;
  cuda_load_report report_;
  model_summary summary_;
};

}  // namespace

std::unique_ptr<cuda_engine> open_cuda_engine(const std::filesystem::path& model_path, const cuda_engine_options& options) {
  try {
    return std::make_unique<cuda_engine_impl>(model_path, options);
  } catch (const gpu::insufficient_vram_error&) {
    throw;  // typed INSUFFICIENT_VRAM with needed/free bytes
  } catch (const gpu::gpu_error& e) {
    throw to_engine_error(e);
  }
}

}  // namespace worker::adapters

#else  // !WORKER_ORCD_HAVE_CUDA

namespace worker::adapters {

std::unique_ptr<cuda_engine> open_cuda_engine(const std::filesystem::path&, const cuda_engine_options&) {
  throw engine_error(engine_error_code::device_error, "this build of worker-orcd has no CUDA backend (nvcc was not found)");
}

}  // namespace worker::adapters

#endif
