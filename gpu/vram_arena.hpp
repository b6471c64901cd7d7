// Device memory for one engine: every byte of weights, KV cache and scratch comes from here, through
// plain cudaMalloc (never managed, host-mapped or zero-copy memory), and is recorded with a tag so a
// test can inspect every allocation of a loaded model.
//
// Failures are typed and recoverable: allocate() throws gpu_error(vram_oom) and leaves the arena as it
// was; mark()/rollback() undo a group of allocations (a request that failed half-way). A failure
// injector lets tests make any allocation fail as if cudaMalloc had run out of memory.
// Pre-flight: plan_vram() sums what a load will need and compares it with cudaMemGetInfo before any
// allocation, throwing insufficient_vram_error with the needed and free bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace worker::gpu {

struct vram_allocation {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  std::string tag;        // "weights", "kv", "scratch", ...
  std::uint64_t seq = 0;  // allocation order (marks compare against it)
};

class vram_arena {
 public:
  // Allocations go to the current device; `device` is recorded and checked.
  explicit vram_arena(int device);
  ~vram_arena();  // releases everything still allocated
  vram_arena(const vram_arena&) = delete;
  vram_arena& operator=(const vram_arena&) = delete;

  // cudaMalloc of `bytes` (rounded up to 256). Throws gpu_error(vram_oom) on failure, real or injected;
  // nothing changes then.
  void* allocate(std::size_t bytes, std::string_view tag);
  // Frees one allocation made here; unknown pointers are ignored. Never throws.
  void release(void* ptr) noexcept;

  using mark_type = std::uint64_t;
  mark_type mark() const;
  // Frees every allocation made after `m`, newest first. Never throws.
  void rollback(mark_type m) noexcept;

  std::uint64_t bytes_in_use() const;
  std::uint64_t bytes_in_use(std::string_view tag) const;
  std::vector<vram_allocation> allocations() const;  // a snapshot, in allocation order
  int device() const { return device_; }

  // Consulted before each cudaMalloc; returning true fails that allocation with vram_oom.
  using failure_injector = std::function<bool(std::size_t bytes, std::string_view tag)>;
  void set_failure_injector(failure_injector f);

 private:
  int device_;
  mutable std::mutex mutex_;
  std::vector<vram_allocation> live_;
  std::uint64_t next_seq_ = 1;
  failure_injector injector_;
};

// Sub-allocates one arena allocation (bump pointer, fixed alignment): all weights of a model live in
// one cudaMalloc'd block.
class vram_region {
 public:
  vram_region() = default;
  vram_region(void* base, std::size_t bytes) : base_(static_cast<std::byte*>(base)), size_(bytes) {}
  // Next `bytes` at `align` (a power of two); throws gpu_error(invalid_argument) past the end (a
  // planning bug, not memory pressure).
  void* carve(std::size_t bytes, std::size_t align = 256);
  std::size_t used() const { return used_; }
  std::size_t size() const { return size_; }
  std::byte* base() const { return base_; }

 private:
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  std::size_t used_ = 0;
};

inline std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

// Where a pointer lives, per cudaPointerGetAttributes.
enum class memory_residency { device, host_pinned, managed, host_pageable, invalid };
std::string_view to_string(memory_residency r);
memory_residency residency_of(const void* ptr);
// True iff `ptr` is plain device memory (cudaMemoryTypeDevice) of `device`.
bool is_device_resident(const void* ptr, int device);

// What a load (or a request) will need on the device, in bytes.
struct vram_plan {
  std::uint64_t weights = 0;
  std::uint64_t kv = 0;       // KV cache for the planned context × slots
  std::uint64_t scratch = 0;  // activations, logits, dequantization tiles
  std::uint64_t headroom = 0; // CUDA context, cuBLAS, fragmentation
  std::uint64_t total() const { return weights + kv + scratch + headroom; }
};

// Throws insufficient_vram_error(needed, free) when plan.total() exceeds `free_bytes`.
void preflight_check(const vram_plan& plan, std::uint64_t free_bytes);

}  // namespace worker::gpu
