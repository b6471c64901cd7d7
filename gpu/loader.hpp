// Loads every tensor of a GGUF file into one VRAM allocation, in its stored quantized type (re-laid out
// where device_matrix.hpp says so, never converted to fp16/fp32).
//
// Pipeline: the tensors are cut into pieces of whole blocks of at most `staging_bytes`; two pinned host
// buffers alternate: while the copy stream moves piece i to the device (and re-lays it out there with
// repack_blocks), several threads pread piece i+1 from the file (page cache) into the other buffer. A
// progress callback sees bytes and tensors done per phase. The rate is reported beside the pinned
// host→device bandwidth the bench measures in the same run.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gpu/device_matrix.hpp"
#include "model/ggml_type.hpp"

namespace worker::model {
class gguf_file;
}

namespace worker::gpu {

class device_context;
class vram_arena;

enum class load_phase { planning, copying, done };
std::string_view to_string(load_phase phase);

struct load_progress {
  load_phase phase = load_phase::planning;
  std::uint64_t bytes_done = 0, bytes_total = 0;      // file bytes
  std::uint32_t tensors_done = 0, tensors_total = 0;
};
using load_progress_fn = std::function<void(const load_progress&)>;

struct loader_options {
  std::size_t staging_bytes = std::size_t{64} << 20;  // per buffer (two of them)
  unsigned read_threads = 8;                          // parallel preads per piece
};

struct load_stats {
  std::uint64_t file_bytes = 0;    // tensor bytes read
  std::uint64_t device_bytes = 0;  // VRAM allocated for them
  double seconds = 0.0;            // wall time from planning to the last copy completing
  double gb_per_s = 0.0;           // file_bytes / seconds / 1e9
};

struct loaded_tensor {
  std::string name;
  model::ggml_type type = model::ggml_type::f32;
  std::array<std::int64_t, 4> ne{1, 1, 1, 1};
  device_matrix matrix;  // rows = ne[1]·ne[2]·ne[3], cols = ne[0]
  const void* base = nullptr;
  std::size_t bytes = 0;  // device layout bytes
};

// The weights of one model in VRAM (the memory belongs to the arena the loader was given).
class weight_store {
 public:
  const loaded_tensor* find(std::string_view name) const;
  const loaded_tensor& at(std::string_view name) const;  // throws gpu_error(invalid_argument)
  const std::vector<loaded_tensor>& tensors() const { return tensors_; }
  void* allocation() const { return allocation_; }
  const load_stats& stats() const { return stats_; }

 private:
  friend weight_store load_weights(const std::filesystem::path&, const model::gguf_file&, vram_arena&,
                                   const device_context&, const loader_options&, const load_progress_fn&);
  std::vector<loaded_tensor> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  void* allocation_ = nullptr;
  load_stats stats_;
};

// Device bytes load_weights will allocate for `file` (for the pre-flight check).
std::uint64_t weights_device_bytes(const model::gguf_file& file);

// Reads the tensors of `file` (opened from `path`) into `arena` (tag "weights"). Throws gpu_error
// (vram_oom, invalid_argument for a type without kernels, device_error) or std::system_error for a read
// failure; on a throw nothing stays allocated.
weight_store load_weights(const std::filesystem::path& path, const model::gguf_file& file, vram_arena& arena,
                          const device_context& ctx, const loader_options& options = {},
                          const load_progress_fn& progress = {});

}  // namespace worker::gpu
