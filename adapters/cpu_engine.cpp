// CPU engine: KV slots, batch assembly and the layer loop over the shared blocks (cpu_blocks.hpp).
//
// A forward call flattens all items' tokens into one [T, d_model] activation matrix. Matmuls run over
// all T rows at once (each output element is one fixed-order dot product, so batching changes nothing);
// attention reads each token's own sequence cache. Sequence lengths are committed only after the whole
// call succeeded.
#include "adapters/cpu_engine.hpp"

#include <algorithm>
#include <map>
#include <new>
#include <string>
#include <variant>
#include <vector>

#include "adapters/cpu_blocks.hpp"
#include "adapters/decoder.hpp"
#include "adapters/kv_slots.hpp"
#include "cpu/matmul.hpp"
#include "cpu/thread_pool.hpp"
#include "model/gguf.hpp"

namespace worker::adapters {

namespace {

// general.file_type names (gguf-py LlamaFileType) for the summary; other values fall back to the
// dominant stored weight type.
std::string file_type_name(std::uint64_t ft) {
  static const std::map<std::uint64_t, std::string> names = {
      {0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {7, "Q8_0"},    {8, "Q5_0"},   {9, "Q5_1"},
      {14, "Q4_K_S"}, {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"}, {32, "BF16"},
      {38, "MXFP4_MOE"}};
  const auto it = names.find(ft);
  return it == names.end() ? std::string() : it->second;
}

std::string dominant_type(const model::gguf_file& f) {
  std::map<std::string, std::uint64_t> bytes;
  for (const auto& t : f.tensors()) {
    if (t.n_dims >= 2) bytes[std::string(model::type_name(t.type))] += t.nbytes;
  }
  std::string best;
  std::uint64_t most = 0;
  for (const auto& [name, n] : bytes) {
    if (n > most) most = n, best = name;
  }
  std::transform(best.begin(), best.end(), best.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return best;
}

class cpu_engine final : public engine {
 public:
  cpu_engine(model::gguf_file file, std::string file_name, const cpu_engine_options& options)
      : file_(std::move(file)),
        model_(load_decoder_model(file_, options.adapter)),
        options_(options),
        pool_(options.n_threads ? options.n_threads : cpu::default_thread_count()) {
    run_ = cpu_run_config{&pool_, options.rounding, options.trace ? &options_.trace : nullptr, 0};
    layer_offset_.resize(model_.layers.size() + 1, 0);
    for (std::size_t l = 0; l < model_.layers.size(); ++l) {
      layer_offset_[l + 1] = layer_offset_[l] + 2 * std::size_t{model_.kv_width(l)};
    }
    context_limit_ = options.max_context ? std::min(options.max_context, model_.n_ctx_train) : model_.n_ctx_train;
    slots_ = kv_slot_table(options.max_sequences, context_limit_, model_.n_vocab);
    kv_data_.resize(options.max_sequences);

    summary_.architecture = model_.architecture;
    summary_.name = std::string(file_.get_string("general.name").value_or(file_name));
    const auto ft = file_.get_uint("general.file_type");
    summary_.quantization = ft ? file_type_name(*ft) : std::string();
    if (summary_.quantization.empty()) summary_.quantization = dominant_type(file_);
    summary_.vocab_size = model_.n_vocab;
    summary_.context_length = model_.n_ctx_train;
    std::uint64_t bytes = 0;
    for (const auto& t : file_.tensors()) bytes += t.nbytes;
    summary_.weight_bytes = bytes;
    summary_.device = "cpu (" + std::to_string(pool_.size()) + " threads)";
  }

  const model_summary& summary() const override { return summary_; }

  sequence_handle open_sequence(std::uint32_t max_positions) override {
    slots_.check_open(max_positions);
    const std::uint64_t bytes = std::uint64_t{max_positions} * layer_offset_.back() * sizeof(float);
    if (kv_bytes_used_ + bytes > options_.kv_budget_bytes) {
      throw engine_error(engine_error_code::kv_exhausted,
                         "KV cache for " + std::to_string(max_positions) + " positions needs " +
                             model::format_bytes(bytes) + ", " +
                             model::format_bytes(options_.kv_budget_bytes - kv_bytes_used_) + " left");
    }
    const std::uint32_t i = slots_.free_slot();
    try {
      kv_data_[i].assign(static_cast<std::size_t>(max_positions) * layer_offset_.back(), 0.0f);
    } catch (const std::bad_alloc&) {
      kv_data_[i] = {};
      throw engine_error(engine_error_code::kv_exhausted, "out of host memory for the KV cache");
    }
    slots_.open(i, max_positions);
    kv_bytes_used_ += bytes;
    return sequence_handle{i};
  }

  void close_sequence(sequence_handle sequence) noexcept override {
    if (!slots_.is_open(sequence)) return;
    kv_bytes_used_ -= std::uint64_t{slots_.at(sequence).capacity} * layer_offset_.back() * sizeof(float);
    kv_data_[sequence.slot] = {};
    slots_.close(sequence);
  }

  std::uint32_t sequence_length(sequence_handle sequence) const override { return slots_.at(sequence).length; }

  std::vector<forward_output> forward(std::span<const forward_item> items) override {
    slots_.validate(items);
    const std::size_t d = model_.d_model;

    // Flatten: token t of the batch -> (item, position, id).
    std::vector<std::size_t> item_of;
    std::vector<std::int64_t> pos_of;
    std::vector<token_id> ids;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const kv_slot_state& s = slots_.at(items[i].sequence);
      for (std::size_t j = 0; j < items[i].tokens.size(); ++j) {
        item_of.push_back(i);
        pos_of.push_back(static_cast<std::int64_t>(s.length + j));
        ids.push_back(items[i].tokens[j]);
      }
    }
    const std::size_t n_tokens = ids.size();

    std::vector<float> h(n_tokens * d);
    const cpu::weight_matrix embd = matrix_of(model_.token_embd);
    for (std::size_t t = 0; t < n_tokens; ++t) cpu::embedding_row(embd, static_cast<std::size_t>(ids[t]), h.data() + t * d);

    std::vector<cpu_token_kv> kv(n_tokens);
    for (std::size_t l = 0; l < model_.layers.size(); ++l) {
      const decoder_layer& layer = model_.layers[l];
      run_.layer = l;
      const std::size_t width = model_.kv_width(l);
      for (std::size_t t = 0; t < n_tokens; ++t) {
        const sequence_handle seq = items[item_of[t]].sequence;
        const kv_slot_state& s = slots_.at(seq);
        float* base = kv_data_[seq.slot].data() + static_cast<std::size_t>(s.capacity) * layer_offset_[l];
        kv[t] = cpu_token_kv{pos_of[t], base, base + static_cast<std::size_t>(s.capacity) * width};
      }
      cpu_attention_forward(layer.attention, model_.norm_eps, h.data(), n_tokens, d, kv, run_);
      std::visit(
          [&](const auto& ffn) {
            using T = std::decay_t<decltype(ffn)>;
            if constexpr (std::is_same_v<T, dense_ffn_block>) {
              cpu_dense_ffn_forward(ffn, model_.norm_eps, h.data(), n_tokens, d, run_);
            } else {
              cpu_moe_ffn_forward(ffn, model_.norm_eps, h.data(), n_tokens, d, run_);
            }
          },
          layer.ffn);
      cpu_trace_rows(run_, "l_out", h.data(), n_tokens, d);
    }

    // Logits for the requested rows only.
    std::vector<forward_output> out(items.size());
    std::vector<std::size_t> rows;
    std::size_t first = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::size_t n = items[i].tokens.size();
      if (items[i].all_logits) {
        for (std::size_t j = 0; j < n; ++j) rows.push_back(first + j);
        out[i].rows = static_cast<std::uint32_t>(n);
      } else {
        rows.push_back(first + n - 1);
        out[i].rows = 1;
      }
      first += n;
    }
    std::vector<float> logits(rows.size() * model_.n_vocab);
    cpu_logits_forward(model_, h.data(), rows, logits.data(), run_);
    std::size_t row = 0;
    for (auto& o : out) {
      o.logits.assign(logits.begin() + static_cast<std::ptrdiff_t>(row * model_.n_vocab),
                      logits.begin() + static_cast<std::ptrdiff_t>((row + o.rows) * model_.n_vocab));
      row += o.rows;
    }

    // Commit: every sequence grows only once everything above succeeded.
    slots_.commit(items);
    return out;
  }

 private:
  model::gguf_file file_;
  decoder_model model_;
  cpu_engine_options options_;
  cpu::thread_pool pool_;
  cpu_run_config run_;
  std::vector<std::size_t> layer_offset_;  // floats per position before layer l's K/V (prefix sums)
  std::uint32_t context_limit_ = 0;
  kv_slot_table slots_;
  std::vector<std::vector<float>> kv_data_;  // per slot, per layer: K [capacity][kv_width], then V
  std::uint64_t kv_bytes_used_ = 0;
  model_summary summary_;
};

}  // namespace

std::unique_ptr<engine> open_cpu_engine(const std::filesystem::path& model_path, const cpu_engine_options& options) {
  auto file = model::gguf_file::open(model_path);
  auto e = std::make_unique<cpu_engine>(std::move(file), model_path.filename().string(), options);
  return e;
}

}  // namespace worker::adapters
