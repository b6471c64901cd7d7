// The engine interface every backend implements (CPU reference engine, CUDA engine). The worker's
// inference actor drives it; `generate` and `bench` use it directly.
//
// Model: an engine holds one loaded model and a pool of KV-cache slots. A sequence occupies one slot
// from open_sequence() to close_sequence(). forward() appends tokens to one or more sequences (a prefill
// chunk of many tokens, or one decode token) and returns the logits of the LAST appended position of
// each; teacher-forced evaluation asks for every position. Results for a sequence never depend on which
// other sequences share the call (batch invariance): each row's reductions run in a fixed order.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace worker::adapters {

using token_id = std::int32_t;

// Typed engine failures. Bad input and resource pressure are recoverable for the engine: after
// context_overflow / kv_exhausted / vram_oom the engine stays usable and its memory is as before the
// failing call. device_error (a sticky CUDA error) and internal are not.
enum class engine_error_code {
  context_overflow,  // sequence would exceed its reserved length or the model's context
  kv_exhausted,      // no free KV slot / not enough KV memory for the requested length
  vram_oom,          // a device allocation for this request failed
  invalid_argument,  // bad token id, unknown sequence, empty input
  device_error,      // CUDA error; the engine may be unusable
  internal,
};

std::string_view to_string(engine_error_code code);

class engine_error : public std::runtime_error {
 public:
  engine_error(engine_error_code code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  engine_error_code code() const { return code_; }

 private:
  engine_error_code code_;
};

struct model_summary {
  std::string architecture;    // "qwen2" | "gpt-oss"
  std::string name;            // general.name or the file name
  std::string quantization;    // file type / dominant weight type, e.g. "Q4_K_M", "MXFP4"
  std::uint32_t vocab_size;    // rows of the output projection
  std::uint32_t context_length;  // the model's trained context (n_ctx_train)
  std::uint64_t weight_bytes;  // bytes of weights as stored
  std::string device;          // "cpu" | "cuda:0 (NVIDIA H100 ...)"
};

struct sequence_handle {
  std::uint32_t slot = UINT32_MAX;
  bool valid() const { return slot != UINT32_MAX; }
};

struct forward_item {
  sequence_handle sequence;
  std::span<const token_id> tokens;  // appended at the sequence's current length
  bool all_logits = false;           // true: logits for every appended position (teacher forcing)
};

// Where an engine's memory is, for the worker's `status` (docs/protocol.md §4.8). A host engine (the
// CPU reference) has no device memory: `on_device` false, the byte counts 0, `resident` true.
struct memory_report {
  bool on_device = false;          // the engine keeps its model in device memory
  std::uint64_t device_used = 0;   // bytes in use on the whole device, every process (total − free)
  std::uint64_t device_total = 0;  // the device's memory
  std::uint64_t engine_bytes = 0;  // the engine's own allocations (weights, KV, scratch)
  std::uint32_t allocations = 0;   // allocations the residency check inspected
  bool resident = true;            // each of them is plain device memory of the engine's device
};

// Logits of one forward_item: rows = all_logits ? tokens.size() : 1, each `vocab_size` floats.
struct forward_output {
  std::vector<float> logits;
  std::uint32_t rows = 0;
};

class engine {
 public:
  virtual ~engine() = default;

  virtual const model_summary& summary() const = 0;

  // Reserves a KV slot able to hold `max_positions` tokens. Throws engine_error (context_overflow if
  // above the model/engine context, kv_exhausted / vram_oom when memory is short).
  virtual sequence_handle open_sequence(std::uint32_t max_positions) = 0;
  // Releases the slot; the handle becomes invalid. Never throws.
  virtual void close_sequence(sequence_handle sequence) noexcept = 0;
  // Number of tokens the sequence holds so far.
  virtual std::uint32_t sequence_length(sequence_handle sequence) const = 0;

  // Appends each item's tokens to its sequence and computes logits (see forward_item). One output per
  // item, in order. On throw, no sequence has changed length.
  virtual std::vector<forward_output> forward(std::span<const forward_item> items) = 0;

  // Live memory figures and the residency check (every allocation is device memory). Unlike the calls
  // above it is thread-safe: it may run on any thread while another call is in flight (the worker runs
  // it periodically on its own thread). It never waits for device work, only asks the driver. The
  // default is a host engine's answer.
  virtual memory_report memory_state() const { return {}; }
};

}  // namespace worker::adapters
