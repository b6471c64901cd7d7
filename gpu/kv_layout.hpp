// Layout of one sequence's fp16 KV cache in VRAM, shared by the RoPE/KV-store and attention kernels:
//
//   base → [layer][K|V][kv_head][position < capacity][head_dim]  (fp16)
//
// so one KV head's keys are contiguous over positions (what the attention kernels stream). Kernels get
// the sequences of a call as a device array of kv_seq_desc and, per token/query, an index into it and
// a position; the pointers live in device memory so a captured CUDA graph can be replayed for other
// sequences by rewriting that array.
#pragma once

#include <cuda_fp16.h>

#include <cstddef>
#include <cstdint>

namespace worker::gpu {

struct kv_seq_desc {
  __half* base = nullptr;     // the sequence's cache (layout above)
  std::int32_t capacity = 0;  // positions reserved
  std::int32_t pad_ = 0;
};

struct kv_dims {
  std::uint32_t n_layer = 0;
  std::uint32_t n_head_kv = 0;
  std::uint32_t head_dim = 0;
};

// Halves of one sequence's cache holding `capacity` positions.
inline std::size_t kv_seq_elems(const kv_dims& d, std::uint32_t capacity) {
  return static_cast<std::size_t>(d.n_layer) * 2 * d.n_head_kv * capacity * d.head_dim;
}

#if defined(__CUDACC__)
// Pointer to K (v = 0) or V (v = 1) of `layer`, kv head `g`, position 0.
__device__ __forceinline__ __half* kv_head_ptr(const kv_seq_desc& s, std::uint32_t layer, int v, std::uint32_t g,
                                               std::uint32_t n_head_kv, std::uint32_t head_dim) {
  const std::size_t per_head = static_cast<std::size_t>(s.capacity) * head_dim;
  return s.base + ((static_cast<std::size_t>(layer) * 2 + v) * n_head_kv + g) * per_head;
}
#endif

}  // namespace worker::gpu
