// What the model-loader produces and every other actor shares: the engine (behind a mutex, since the
// engine interface promises no thread safety and several inference streams may share it), the
// tokenizer, the model's end-of-generation set and its description for `status`. Also the loading
// itself, with progress, free of CAF so that it can be tested and timed alone.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "adapters/engine.hpp"
#include "model/chat/chat_format.hpp"
#include "model/tokenizer/tokenizer.hpp"
#include "protocol/messages.hpp"

namespace worker::actors {

using adapters::token_id;

// Builds the engine for a model file; the worker's default opens the CPU engine. Tests inject a wrapper
// here (e.g. one that fails allocations on demand).
using engine_factory = std::function<std::unique_ptr<adapters::engine>(const std::filesystem::path& model)>;

struct shared_engine {
  std::unique_ptr<adapters::engine> engine;
  std::mutex mutex;  // held for every call into `engine`
};

// One run of the engine's memory check (adapters::engine::memory_state) and when it ran.
struct memory_sample {
  adapters::memory_report report;
  std::uint64_t checked_ms = 0;  // unix ms
};

// Runs the check on the calling thread (never a CAF scheduler thread: it may wait for the driver). The
// engine mutex is not needed (memory_state is thread-safe). An exception counts as a failed check.
memory_sample sample_memory(const adapters::engine& engine);

struct model_bundle {
  shared_engine engine;
  model::tokenizer tokenizer;
  std::optional<model::chat_format_kind> chat;  // the architecture's chat format (none: raw prompts only)
  std::vector<token_id> eog;      // end-of-generation set (model-facts.md §6.5)
  protocol::model_info info;      // for status
  std::string device;             // engine summary's device text
  memory_sample memory;           // the memory check right after loading (later ones: the monitor)
  std::uint32_t context_length;   // per sequence: the model's, or less when --ctx says so

  model_bundle(std::unique_ptr<adapters::engine> e, model::tokenizer t) : tokenizer(std::move(t)) {
    engine.engine = std::move(e);
  }
};

struct load_options {
  std::filesystem::path model;
  std::string device = "cpu";        // "cpu" | "cuda:N"
  std::uint32_t max_context = 0;     // --ctx; 0: the model's trained context
  engine_factory factory;            // empty: the device's engine
  unsigned cpu_threads = 0;          // CPU engine threads; 0: all cores
  std::uint32_t max_sequences = 0;   // engine KV slots; 0: streams x slots (worker_service fills it in)
  std::uint64_t kv_budget_bytes = 8ull << 30;  // CPU engine KV memory
  const std::atomic<bool>* cancel = nullptr;   // when set and true, loading stops with load_error
};

// Called at least every 5 % and every second while loading, plus the first and the last event.
using progress_callback = std::function<void(const protocol::progress_event&)>;

// Typed load failure: MODEL_LOAD_FAILED or INSUFFICIENT_VRAM.
class load_error : public std::runtime_error {
 public:
  load_error(protocol::error_code code, const std::string& message) : std::runtime_error(message), code_(code) {}
  protocol::error_code code() const { return code_; }

 private:
  protocol::error_code code_;
};

// Opens the GGUF file and builds the tokenizer and the engine: `cpu` pages the weights in first
// (reporting progress), `cuda:N` opens the CUDA engine, whose loader reports its host-to-device copies.
// Throws load_error (INSUFFICIENT_VRAM when the engine says the model does not fit).
std::shared_ptr<model_bundle> load_model_bundle(const load_options& options, const progress_callback& progress);

}  // namespace worker::actors
