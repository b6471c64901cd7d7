// Model loading with progress (see model_bundle.hpp). The CPU engine maps the file; to make "loaded"
// mean the weights are in memory (not a first request paying for page faults) the loader reads every
// tensor's pages once, in file order, and reports that as the `weights` phase. A GPU engine would report
// its host-to-device copies in the same phase.
#include "actors/model_bundle.hpp"

#include <algorithm>
#include <chrono>

#include "adapters/cpu_engine.hpp"
#include "actors/narration.hpp"
#include "adapters/cuda_engine.hpp"
#include "model/gguf.hpp"
#include "model/tokenizer_vocab.hpp"

namespace worker::actors {
namespace {

using clock = std::chrono::steady_clock;

// Emits progress when the percentage moved by 4 points or a second passed since the last event (the
// promise is "at least every 5 % and every second"; callers advance in steps of at most 1 %).
class progress_throttle {
 public:
  progress_throttle(const progress_callback& cb, std::uint64_t bytes_total, std::uint32_t tensors_total)
      : cb_(cb), start_(clock::now()), last_time_(start_) {
    event_.bytes_total = bytes_total;
    event_.tensors_total = tensors_total;
  }

  // A loader that counts differently (a GPU engine's own loader) brings its own totals.
  void set_totals(std::uint64_t bytes_total, std::uint32_t tensors_total) {
    event_.bytes_total = bytes_total;
    event_.tensors_total = tensors_total;
  }

  void update(protocol::load_phase phase, std::uint64_t bytes_done, std::uint32_t tensors_done, bool force) {
    const auto now = clock::now();
    const double percent = event_.bytes_total == 0 ? 100.0 : 100.0 * static_cast<double>(bytes_done) /
                                                                   static_cast<double>(event_.bytes_total);
    if (!force && percent < last_percent_ + 4.0 && now - last_time_ < std::chrono::seconds(1)) return;
    event_.phase = phase;
    event_.bytes_done = bytes_done;
    event_.tensors_done = tensors_done;
    event_.percent = percent;
    event_.elapsed_ms = std::chrono::duration<double, std::milli>(now - start_).count();
    event_.rate_mb_s = event_.elapsed_ms > 0 ? static_cast<double>(bytes_done) / 1e6 / (event_.elapsed_ms / 1e3) : 0;
    last_percent_ = percent;
    last_time_ = now;
    if (cb_) cb_(event_);
  }

 private:
  const progress_callback& cb_;
  clock::time_point start_;
  clock::time_point last_time_;
  double last_percent_ = -100.0;
  protocol::progress_event event_;
};

// "cuda:N" -> N; nullopt for anything else.
std::optional<int> cuda_index(const std::string& device) {
  if (device.rfind("cuda:", 0) != 0 || device.size() == 5 || device.size() > 8) return std::nullopt;
  int n = 0;
  for (char c : device.substr(5)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

memory_sample sample_memory(const adapters::engine& engine) {
  memory_sample m;
  try {
    m.report = engine.memory_state();
  } catch (const std::exception&) {
    m.report = adapters::memory_report{};
    m.report.on_device = true;
    m.report.resident = false;
  }
  m.checked_ms = unix_ms();
  return m;
}

std::shared_ptr<model_bundle> load_model_bundle(const load_options& options, const progress_callback& progress) {
  const auto fail = [&](protocol::error_code code, const std::string& what) -> load_error {
    if (progress) {
      protocol::progress_event e;
      e.phase = protocol::load_phase::failed;
      progress(e);
    }
    return load_error(code, what);
  };

  std::optional<model::gguf_file> file;
  try {
    file.emplace(model::gguf_file::open(options.model));
  } catch (const std::exception& e) {
    throw fail(protocol::error_code::model_load_failed, options.model.string() + ": " + e.what());
  }

  // Tensors in file order, so that reading them is one sequential pass.
  std::vector<const model::gguf_tensor_info*> tensors;
  std::uint64_t total = 0;
  for (const auto& t : file->tensors()) {
    tensors.push_back(&t);
    total += t.nbytes;
  }
  std::sort(tensors.begin(), tensors.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  progress_throttle throttle(progress, total, static_cast<std::uint32_t>(tensors.size()));
  throttle.update(protocol::load_phase::open, 0, 0, true);

  // A GPU engine reads the file itself and reports its own progress (host-to-device copies).
  const auto gpu = cuda_index(options.device);
  if (!gpu && options.device != "cpu" && !options.factory) {
    throw fail(protocol::error_code::model_load_failed, "unknown device '" + options.device + "' (cpu or cuda:N)");
  }

  // Page the weights in: one read per 4 KiB page. The sum keeps the reads from being optimized away.
  const std::size_t piece_bytes = std::clamp<std::uint64_t>(total / 100, 64u << 10, 4u << 20);
  std::uint64_t done = 0;
  std::uint32_t n_done = 0;
  volatile unsigned char sink = 0;
  for (const auto* t : tensors) {
    if (gpu) break;
    if (options.cancel != nullptr && options.cancel->load()) {
      throw fail(protocol::error_code::model_load_failed, "loading cancelled by shutdown");
    }
    const auto bytes = file->tensor_data(*t);
    // Pieces of at most 1 % of the file, so that one large tensor (the embedding) still reports at
    // least every 5 % (the throttle fires at 4 %).
    for (std::size_t piece = 0; piece < bytes.size(); piece += piece_bytes) {
      const std::size_t end = std::min(bytes.size(), piece + piece_bytes);
      unsigned char acc = 0;
      for (std::size_t i = piece; i < end; i += 4096) acc ^= static_cast<unsigned char>(bytes[i]);
      sink = sink ^ acc;
      done += end - piece;
      throttle.update(protocol::load_phase::weights, done, n_done, false);
    }
    ++n_done;
    throttle.update(protocol::load_phase::weights, done, n_done, false);
  }

  std::optional<model::tokenizer> tok;
  try {
    tok.emplace(model::tokenizer_vocab_from_gguf(*file));
  } catch (const std::exception& e) {
    throw fail(protocol::error_code::model_load_failed, "tokenizer: " + std::string(e.what()));
  }

  std::unique_ptr<adapters::engine> engine;
  try {
    if (options.factory) {
      engine = options.factory(options.model);
    } else if (options.device == "cpu") {
      adapters::cpu_engine_options o;
      o.n_threads = options.cpu_threads;
      o.max_sequences = options.max_sequences > 0 ? options.max_sequences : 64;
      o.kv_budget_bytes = options.kv_budget_bytes;
      o.max_context = options.max_context;
      engine = adapters::open_cpu_engine(options.model, o);
    } else {
      adapters::cuda_engine_options o;
      o.device = *gpu;
      if (options.max_sequences > 0) o.max_sequences = options.max_sequences;
      if (options.max_context > 0) o.max_context = options.max_context;
      o.on_load_progress = [&](std::uint64_t done, std::uint64_t bytes_total, std::uint32_t tensors_done,
                               std::uint32_t tensors_total, std::string_view) {
        if (options.cancel != nullptr && options.cancel->load()) {
          throw load_error(protocol::error_code::model_load_failed, "loading cancelled by shutdown");
        }
        throttle.set_totals(bytes_total, tensors_total);
        throttle.update(protocol::load_phase::weights, done, tensors_done, false);
      };
      engine = adapters::open_cuda_engine(options.model, o);
    }
  } catch (const load_error&) {
    throw;
  } catch (const adapters::engine_error& e) {
    const bool memory = e.code() == adapters::engine_error_code::vram_oom ||
                        e.code() == adapters::engine_error_code::kv_exhausted;
    throw fail(memory ? protocol::error_code::insufficient_vram : protocol::error_code::model_load_failed, e.what());
  } catch (const std::exception& e) {
    throw fail(protocol::error_code::model_load_failed, options.model.string() + ": " + e.what());
  }

  const auto& s = engine->summary();
  auto bundle = std::make_shared<model_bundle>(std::move(engine), std::move(*tok));
  bundle->chat = model::chat_format_for_architecture(s.architecture);
  if (bundle->chat) {
    for (auto id : model::end_of_generation_ids(bundle->tokenizer, *bundle->chat)) bundle->eog.push_back(static_cast<token_id>(id));
  } else if (auto eos = bundle->tokenizer.eos_id()) {
    bundle->eog.push_back(static_cast<token_id>(*eos));
  }
  bundle->info = protocol::model_info{s.name, s.architecture, s.quantization, s.vocab_size, s.context_length,
                                      s.weight_bytes};
  bundle->device = s.device;
  bundle->memory = sample_memory(*bundle->engine.engine);
  bundle->context_length = options.max_context > 0 ? std::min(options.max_context, s.context_length) : s.context_length;
  throttle.set_totals(total, static_cast<std::uint32_t>(tensors.size()));
  throttle.update(protocol::load_phase::ready, total, static_cast<std::uint32_t>(tensors.size()), true);
  return bundle;
}

}  // namespace worker::actors
