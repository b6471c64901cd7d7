// VRAM arena, residency queries and the pre-flight check (see vram_arena.hpp).
#include "gpu/vram_arena.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>

#include "gpu/gpu_error.hpp"
#include "model/gguf.hpp"

namespace worker::gpu {

vram_arena::vram_arena(int device) : device_(device) {}

vram_arena::~vram_arena() { rollback(0); }

void* vram_arena::allocate(std::size_t bytes, std::string_view tag) {
  const std::size_t rounded = align_up(bytes == 0 ? 1 : bytes, 256);
  std::lock_guard lock(mutex_);
  if (injector_ && injector_(rounded, tag)) {
    throw gpu_error(gpu_error_code::vram_oom, "VRAM allocation of " + model::format_bytes(rounded) + " for '" +
                                                  std::string(tag) + "' failed (injected)");
  }
  int current = -1;
  cudaGetDevice(&current);
  if (current != device_) {
    throw gpu_error(gpu_error_code::device_error, "vram_arena for device " + std::to_string(device_) +
                                                      " used while device " + std::to_string(current) + " is current");
  }
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, rounded);
  if (err != cudaSuccess) {
    cudaGetLastError();  // out-of-memory is not sticky; clear it so later launches are not blamed
    std::size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw gpu_error(err == cudaErrorMemoryAllocation ? gpu_error_code::vram_oom : gpu_error_code::device_error,
                    "VRAM allocation of " + model::format_bytes(rounded) + " for '" + std::string(tag) +
                        "' failed: " + cudaGetErrorString(err) + " (" + model::format_bytes(free_b) + " free)");
  }
  live_.push_back({p, rounded, std::string(tag), next_seq_++});
  return p;
}

void vram_arena::release(void* ptr) noexcept {
  if (!ptr) return;
  std::lock_guard lock(mutex_);
  auto it = std::find_if(live_.begin(), live_.end(), [&](const vram_allocation& a) { return a.ptr == ptr; });
  if (it == live_.end()) return;
  cudaFree(it->ptr);
  live_.erase(it);
}

vram_arena::mark_type vram_arena::mark() const {
  std::lock_guard lock(mutex_);
  return next_seq_;
}

void vram_arena::rollback(mark_type m) noexcept {
  std::lock_guard lock(mutex_);
  while (!live_.empty() && live_.back().seq >= m) {
    cudaFree(live_.back().ptr);
    live_.pop_back();
  }
  // Allocations are appended in seq order and release() keeps that order, so everything newer than m
  // sat at the back.
}

std::uint64_t vram_arena::bytes_in_use() const {
  std::lock_guard lock(mutex_);
  std::uint64_t s = 0;
  for (const auto& a : live_) s += a.bytes;
  return s;
}

std::uint64_t vram_arena::bytes_in_use(std::string_view tag) const {
  std::lock_guard lock(mutex_);
  std::uint64_t s = 0;
  for (const auto& a : live_) {
    if (a.tag == tag) s += a.bytes;
  }
  return s;
}

std::vector<vram_allocation> vram_arena::allocations() const {
  std::lock_guard lock(mutex_);
  return live_;
}

void vram_arena::set_failure_injector(failure_injector f) {
  std::lock_guard lock(mutex_);
  injector_ = std::move(f);
}

void* vram_region::carve(std::size_t bytes, std::size_t align) {
  const std::size_t start = align_up(used_, align);
  if (start + bytes > size_) {
    throw gpu_error(gpu_error_code::invalid_argument,
                    "vram_region overflow: " + std::to_string(start + bytes) + " > " + std::to_string(size_));
  }
  used_ = start + bytes;
  return base_ + start;
}

std::string_view to_string(memory_residency r) {
  switch (r) {
    case memory_residency::device: return "device";
    case memory_residency::host_pinned: return "host_pinned";
    case memory_residency::managed: return "managed";
    case memory_residency::host_pageable: return "host_pageable";
    case memory_residency::invalid: return "invalid";
  }
  return "invalid";
}

memory_residency residency_of(const void* ptr) {
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, ptr);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return memory_residency::invalid;
  }
  switch (attr.type) {
    case cudaMemoryTypeDevice: return memory_residency::device;
    case cudaMemoryTypeHost: return memory_residency::host_pinned;
    case cudaMemoryTypeManaged: return memory_residency::managed;
    case cudaMemoryTypeUnregistered: return memory_residency::host_pageable;
  }
  return memory_residency::invalid;
}

bool is_device_resident(const void* ptr, int device) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attr.type == cudaMemoryTypeDevice && attr.device == device && attr.hostPointer == nullptr;
}

void preflight_check(const vram_plan& plan, std::uint64_t free_bytes) {
  if (plan.total() <= free_bytes) return;
  throw insufficient_vram_error(
      plan.total(), free_bytes,
      "INSUFFICIENT_VRAM: need " + model::format_bytes(plan.total()) + " (weights " + model::format_bytes(plan.weights) +
          ", KV " + model::format_bytes(plan.kv) + ", scratch " + model::format_bytes(plan.scratch) + ", headroom " +
          model::format_bytes(plan.headroom) + ") but only " + model::format_bytes(free_bytes) + " is free");
}

}  // namespace worker::gpu
