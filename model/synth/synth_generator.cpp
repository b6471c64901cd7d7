// The synthetic model generator (see synth_generator.hpp): metadata, then a parallel quantize / ordered
// write pipeline over chunks of rows.
#include "model/synth/synth_generator.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "model/gguf_writer.hpp"
#include "model/hf_tokenizer_import.hpp"
#include "model/quant.hpp"
#include "model/synth/synth_values.hpp"

namespace worker::model::synth {
namespace {

// One unit of work: rows [row_begin, row_end) of one tensor. About 1 Mi elements (4 MiB of floats), so
// the 7B model splits into a few thousand chunks and a pool of 16 threads stays busy.
struct chunk {
  std::size_t tensor;
  std::int64_t row_begin;
  std::int64_t row_end;
};
constexpr std::int64_t k_chunk_elems = std::int64_t{1} << 20;

std::vector<chunk> split_into_chunks(const synth_plan& plan) {
  std::vector<chunk> chunks;
  for (std::size_t t = 0; t < plan.tensors.size(); ++t) {
    const auto& tensor = plan.tensors[t];
    const std::int64_t rows = tensor.n_rows();
    const std::int64_t per_chunk = std::max<std::int64_t>(1, k_chunk_elems / tensor.ne[0]);
    for (std::int64_t r = 0; r < rows; r += per_chunk) chunks.push_back({t, r, std::min(rows, r + per_chunk)});
  }
  return chunks;
}

// Encodes `rows` rows of `ne0` floats as `type`. Plain float types are converted here; block types go
// through the reference quantizers of model/quant.hpp (the same code the round-trip tests check).
void encode_rows(ggml_type type, const float* src, std::int64_t rows, std::int64_t ne0, std::byte* dst) {
  const auto n = static_cast<std::size_t>(rows * ne0);
  switch (type) {
    case ggml_type::f32:
      std::memcpy(dst, src, n * sizeof(float));
      return;
    case ggml_type::f16:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = fp32_to_fp16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case ggml_type::bf16:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t b = fp32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &b, 2);
      }
      return;
    default: {
      const std::size_t rb = row_bytes(type, static_cast<std::size_t>(ne0));
      for (std::int64_t r = 0; r < rows; ++r) {
        quantize_row(type, src + r * ne0, dst + static_cast<std::size_t>(r) * rb, static_cast<std::size_t>(ne0));
      }
    }
  }
}

void write_metadata(gguf_writer& w, const synth_plan& plan, const tokenizer_vocab& vocab, const synth_options& options) {
  const synth_preset& p = *plan.preset;
  const std::string arch(arch_name(p.arch));
  auto k = [&](std::string_view suffix) { return arch + "." + std::string(suffix); };

  w.add_string("general.architecture", arch);
  w.add_string("general.type", "model");
  w.add_string("general.name", p.general_name);
  w.add_uint32("general.alignment", 32);
  // Keys of model-facts.md §1.5, with the types real files use (u32 counts, f32 reals).
  w.add_uint32(k("block_count"), p.n_layer);
  w.add_uint32(k("context_length"), p.n_ctx_train);
  w.add_uint32(k("embedding_length"), p.n_embd);
  w.add_uint32(k("feed_forward_length"), p.n_ff);
  w.add_uint32(k("attention.head_count"), p.n_head);
  w.add_uint32(k("attention.head_count_kv"), p.n_head_kv);
  w.add_float32(k("rope.freq_base"), p.rope_base);
  w.add_float32(k("attention.layer_norm_rms_epsilon"), p.rms_eps);
  if (p.arch == synth_arch::gpt_oss) {
    // gpt-oss: head_dim 64 is not n_embd / n_head, so the file must say it; rope.dimension_count and the
    // YaRN beta keys are absent in the real files (llama.cpp uses head_dim and its defaults 32 / 1).
    w.add_uint32(k("expert_count"), p.n_expert);
    w.add_uint32(k("expert_used_count"), p.n_expert_used);
    w.add_uint32(k("attention.key_length"), p.head_dim);
    w.add_uint32(k("attention.value_length"), p.head_dim);
    w.add_uint32(k("attention.sliding_window"), p.sliding_window);
    w.add_uint32(k("expert_feed_forward_length"), p.n_ff_exp);
    w.add_string(k("rope.scaling.type"), "yarn");
    w.add_float32(k("rope.scaling.factor"), p.yarn_factor);
    w.add_uint32(k("rope.scaling.original_context_length"), p.yarn_orig_ctx);
  }
  w.add_uint32("general.file_type", plan.file_type);
  w.add_uint32("general.quantization_version", 2);
  // Provenance of the synthetic weights; readers ignore unknown keys.
  w.add_string("worker_orcd.synth.preset", p.name);
  w.add_string("worker_orcd.synth.weights", plan.weights);
  w.add_uint64("worker_orcd.synth.seed", options.seed);

  w.add_string("tokenizer.ggml.model", vocab.model);
  w.add_string("tokenizer.ggml.pre", vocab.pre);
  w.add_array("tokenizer.ggml.tokens", std::span<const std::string>(vocab.tokens));
  std::vector<std::int32_t> types(vocab.token_types.size());
  std::transform(vocab.token_types.begin(), vocab.token_types.end(), types.begin(), [](token_type t) { return static_cast<std::int32_t>(t); });
  w.add_array("tokenizer.ggml.token_type", std::span<const std::int32_t>(types));
  w.add_array("tokenizer.ggml.merges", std::span<const std::string>(vocab.merges));
  if (vocab.bos_id) w.add_uint32("tokenizer.ggml.bos_token_id", *vocab.bos_id);
  if (vocab.eos_id) w.add_uint32("tokenizer.ggml.eos_token_id", *vocab.eos_id);
  if (vocab.pad_id) w.add_uint32("tokenizer.ggml.padding_token_id", *vocab.pad_id);
  if (vocab.add_bos) w.add_bool("tokenizer.ggml.add_bos_token", *vocab.add_bos);
  if (options.chat_template && vocab.chat_template) w.add_string("tokenizer.chat_template", *vocab.chat_template);
}

// Quantizes chunks on `n_threads` workers and hands them to the writer strictly in chunk order. Worker
// j may run at most `window` chunks ahead of the writer, which bounds memory to window output buffers.
class chunk_pipeline {
 public:
  chunk_pipeline(const synth_plan& plan, std::uint64_t seed, unsigned n_threads)
      : plan_(plan), seed_(seed), chunks_(split_into_chunks(plan)), window_(std::max(2u, 2 * n_threads)), slots_(window_) {
    for (unsigned i = 0; i < n_threads; ++i) workers_.emplace_back([this] { work(); });
  }

  ~chunk_pipeline() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  std::size_t size() const { return chunks_.size(); }
  const chunk& at(std::size_t i) const { return chunks_[i]; }

  // Blocks until chunk i is encoded; the span stays valid until release(i).
  std::span<const std::byte> wait(std::size_t i) {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return slots_[i % window_].done == i + 1 || error_; });
    if (error_) std::rethrow_exception(error_);
    return slots_[i % window_].bytes;
  }

  void release(std::size_t i) {
    {
      std::lock_guard lock(mutex_);
      released_ = i + 1;
    }
    cv_.notify_all();
  }

 private:
  struct slot {
    std::size_t done = 0;  // chunk index + 1 whose bytes the slot holds (0 = none)
    std::vector<std::byte> bytes;
  };

  void work() {
    std::vector<float> values;
    for (;;) {
      const std::size_t i = next_.fetch_add(1);
      {
        std::unique_lock lock(mutex_);
        // Slot i % window is free once the writer released chunk i - window.
        cv_.wait(lock, [&] { return stop_ || i >= chunks_.size() || i < released_ + window_; });
        if (stop_ || i >= chunks_.size()) return;
      }
      try {
        const chunk& c = chunks_[i];
        const synth_tensor& t = plan_.tensors[c.tensor];
        const std::int64_t ne0 = t.ne[0];
        const std::int64_t rows = c.row_end - c.row_begin;
        values.resize(static_cast<std::size_t>(rows * ne0));
        synth_fill_rows(seed_, t, c.row_begin, values);
        std::vector<std::byte> out(row_bytes(t.type, static_cast<std::size_t>(ne0)) * static_cast<std::size_t>(rows));
        encode_rows(t.type, values.data(), rows, ne0, out.data());
        {
          std::lock_guard lock(mutex_);
          slots_[i % window_].bytes = std::move(out);
          slots_[i % window_].done = i + 1;
        }
      } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
      cv_.notify_all();
    }
  }

  const synth_plan& plan_;
  const std::uint64_t seed_;
  std::vector<chunk> chunks_;
  const std::size_t window_;
  std::vector<slot> slots_;
  std::atomic<std::size_t> next_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t released_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> workers_;
};

}  // namespace

tokenizer_vocab synth_import_tokenizer(const synth_preset& p, const std::filesystem::path& tokenizer_json) {
  hf_tokenizer_import_options o;
  o.pre = std::string(p.tokenizer.pre);
  o.last_id = p.tokenizer.last_id;
  o.padded_size = p.n_vocab;
  o.bos_id = p.tokenizer.bos_id;
  o.eos_id = p.tokenizer.eos_id;
  o.pad_id = p.tokenizer.pad_id;
  tokenizer_vocab v = import_hf_tokenizer(tokenizer_json, o);
  auto expect = [&](std::uint32_t id, std::string_view text, const char* what) {
    if (v.tokens[id] != text) {
      throw std::runtime_error(tokenizer_json.string() + " does not fit preset " + std::string(p.name) + ": " + what + " id " +
                               std::to_string(id) + " is '" + v.tokens[id] + "', expected '" + std::string(text) + "'");
    }
  };
  expect(p.tokenizer.bos_id, p.tokenizer.bos_text, "bos");
  expect(p.tokenizer.eos_id, p.tokenizer.eos_text, "eos");
  expect(p.tokenizer.pad_id, p.tokenizer.pad_text, "pad");
  if (v.token_types[p.tokenizer.last_id] == token_type::unused) {
    throw std::runtime_error(tokenizer_json.string() + " does not fit preset " + std::string(p.name) + ": it has no token with id " +
                             std::to_string(p.tokenizer.last_id));
  }
  return v;
}

synth_result synth_generate(const synth_options& options) {
  const auto start = std::chrono::steady_clock::now();
  const synth_preset* preset = find_synth_preset(options.preset);
  if (preset == nullptr) {
    std::string names;
    for (const auto& p : synth_presets()) {
      if (!names.empty()) names += ", ";
      names += p.name;
    }
    throw std::invalid_argument("unknown preset '" + options.preset + "' (known: " + names + ")");
  }
  const std::string weights = options.weights.empty() ? std::string(preset->weight_schemes.front()) : options.weights;
  const synth_plan plan = make_synth_plan(*preset, weights);
  if (options.out.empty()) throw std::invalid_argument("no output path");
  const unsigned threads = options.threads != 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());

  if (options.progress != nullptr) std::fprintf(options.progress, "synth: importing tokenizer %s\n", options.tokenizer_json.c_str());
  const tokenizer_vocab vocab = synth_import_tokenizer(*preset, options.tokenizer_json);

  std::filesystem::path partial = options.out;
  partial += ".partial";
  synth_result result;
  try {
    gguf_writer writer(partial);
    write_metadata(writer, plan, vocab, options);
    for (const auto& t : plan.tensors) writer.add_tensor(t.name, t.type, t.ne);
    writer.begin_data();
    const std::uint64_t total = writer.data_section_size();
    if (options.progress != nullptr) {
      std::fprintf(options.progress, "synth: %s --weights %s --seed %llu: %zu tensors, %.2f GiB of data, %u threads\n",
                   std::string(preset->name).c_str(), weights.c_str(), static_cast<unsigned long long>(options.seed),
                   plan.tensors.size(), static_cast<double>(total) / (1u << 30), threads);
    }
    chunk_pipeline pipeline(plan, options.seed, threads);
    std::uint64_t written = 0;
    int last_percent = 0;
    for (std::size_t i = 0; i < pipeline.size(); ++i) {
      const auto bytes = pipeline.wait(i);
      writer.write_data(bytes);
      written += bytes.size();
      pipeline.release(i);
      const int percent = static_cast<int>(100 * written / std::max<std::uint64_t>(total, 1));
      if (options.progress != nullptr && percent >= last_percent + 10) {
        last_percent = percent - percent % 10;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(options.progress, "synth: %3d%% (%.2f GiB) %.1f s\n", last_percent, static_cast<double>(written) / (1u << 30), s);
      }
    }
    result.file_bytes = writer.finish();
    result.n_tensors = plan.tensors.size();
    result.n_kv = writer.kv_count();
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(partial, ec);
    throw;
  }
  std::filesystem::rename(partial, options.out);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (options.progress != nullptr) {
    std::fprintf(options.progress, "synth: wrote %s (%llu bytes) in %.1f s\n", options.out.c_str(),
                 static_cast<unsigned long long>(result.file_bytes), result.seconds);
  }
  return result;
}

}  // namespace worker::model::synth
