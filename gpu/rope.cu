// Kernels, launchers and typed entries of rope.cuh.
#include "gpu/rope.cuh"

#include <string>

#include "gpu/gpu_error.hpp"

namespace worker::gpu {

namespace {

// One thread per item of a token: a Q pair (head, p) rotated in place, then a K pair rotated and
// stored, then a V pair stored; grid (item blocks, token). Every thread loads its inputs before it
// waits on the token's position (the cos/sin row and, for K and V, the cache pointer depend on it), so a
// thread's chain is two dependent loads and a store. Only the threads that write the cache need the
// sequence's capacity check; Q threads check the angle table's size.
constexpr int k_rope_threads = 128;

__global__ void __launch_bounds__(k_rope_threads) rope_kv_kernel(const rope_kv_args a) {
  const std::uint32_t t = blockIdx.y;
  const std::uint32_t half = a.head_dim / 2;  // n_rot = head_dim (the launcher's requirement)
  const std::uint32_t nq = a.n_head * half, nk = a.n_head_kv * half;
  const std::uint32_t it = blockIdx.x * k_rope_threads + threadIdx.x;
  if (it >= nq + 2 * nk) return;
  const std::int32_t pos = a.token_pos[t];
  const std::uint32_t hd = a.head_dim;
  if (it < nq) {
    // Q: rotate in place.
    const std::uint32_t h = it / half, p = it % half;
    float* x = a.q + static_cast<std::size_t>(t) * a.ldq + h * hd;
    float x0 = x[p], x1 = x[p + half];
    if (a.q_bias) {
      x0 = __fadd_rn(x0, a.q_bias[h * hd + p]);
      x1 = __fadd_rn(x1, a.q_bias[h * hd + p + half]);
    }
    if (pos < 0 || static_cast<std::uint32_t>(pos) >= a.table_positions) __trap();
    const float2 c = a.cos_sin[static_cast<std::size_t>(pos) * half + p];
    x[p] = __fsub_rn(__fmul_rn(x0, c.x), __fmul_rn(x1, c.y));
    x[p + half] = __fadd_rn(__fmul_rn(x0, c.y), __fmul_rn(x1, c.x));
    return;
  }
  const bool is_k = it < nq + nk;
  const std::uint32_t u = is_k ? it - nq : it - nq - nk;
  const std::uint32_t g = u / half, p = u % half;
  const float* src = is_k ? a.k + static_cast<std::size_t>(t) * a.ldk : a.v + static_cast<std::size_t>(t) * a.ldv;
  const float* bias = is_k ? a.k_bias : a.v_bias;
  float x0 = src[g * hd + p], x1 = src[g * hd + p + half];
  if (bias) {
    x0 = __fadd_rn(x0, bias[g * hd + p]);
    x1 = __fadd_rn(x1, bias[g * hd + p + half]);
  }
  const kv_seq_desc seq = a.seqs[a.token_seq[t]];
  if (pos < 0 || pos >= seq.capacity || static_cast<std::uint32_t>(pos) >= a.table_positions) {
    __trap();  // the engine checks positions against the capacity before launching
  }
  if (is_k) {
    const float2 c = a.cos_sin[static_cast<std::size_t>(pos) * half + p];
    const float r0 = __fsub_rn(__fmul_rn(x0, c.x), __fmul_rn(x1, c.y));
    const float r1 = __fadd_rn(__fmul_rn(x0, c.y), __fmul_rn(x1, c.x));
    x0 = r0;
    x1 = r1;
  }
  __half* dst = kv_head_ptr(seq, a.layer, is_k ? 0 : 1, g, a.n_head_kv, hd) + static_cast<std::size_t>(pos) * hd;
  dst[p] = __float2half_rn(x0);
  dst[p + half] = __float2half_rn(x1);
}

__global__ void swiglu_f16_kernel(const float* __restrict__ gate, const float* __restrict__ up, std::uint32_t ld_in,
                                  std::uint32_t dim, __half* __restrict__ out, std::uint32_t ld_out) {
  const std::uint32_t t = blockIdx.y;
  for (std::uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < dim; i += gridDim.x * blockDim.x) {
    const float g = gate[static_cast<std::size_t>(t) * ld_in + i];
    const float u = up[static_cast<std::size_t>(t) * ld_in + i];
    out[static_cast<std::size_t>(t) * ld_out + i] = __float2half_rn(__fmul_rn(__fmul_rn(g, __fdiv_rn(1.0f, 1.0f + expf(-g))), u));
  }
}

}  // namespace

void rope_qk_store_kv(const rope_kv_args& a, cudaStream_t stream) {
  auto require = [](bool ok, const char* what) {
    if (!ok) throw gpu_error(gpu_error_code::invalid_argument, std::string("rope_qk_store_kv: ") + what);
  };
  require(a.q && a.k && a.v && a.cos_sin && a.seqs && a.token_seq && a.token_pos, "null pointer");
  require(a.head_dim % 2 == 0 && (a.n_rot == a.head_dim), "n_rot must equal head_dim (qwen2, gpt-oss)");
  require(a.ldq >= a.n_head * a.head_dim && a.ldk >= a.n_head_kv * a.head_dim && a.ldv >= a.n_head_kv * a.head_dim,
          "bad strides");
  require(a.n <= 65535, "at most 65535 tokens per launch (grid y)");
  if (a.n == 0) return;
  const std::uint32_t items = (a.n_head + 2 * a.n_head_kv) * (a.head_dim / 2);
  rope_kv_kernel<<<dim3((items + k_rope_threads - 1) / k_rope_threads, a.n), k_rope_threads, 0, stream>>>(a);
  WORKER_CUDA_CHECK_LAUNCH("rope_kv_kernel");
}

void swiglu_to_f16(const float* gate, const float* up, std::uint32_t ld_in, std::uint32_t n, std::uint32_t dim,
                   __half* out, std::uint32_t ld_out, cudaStream_t stream) {
  if (n == 0) return;
  dim3 grid((dim + 255) / 256, n);
  swiglu_f16_kernel<<<grid, 256, 0, stream>>>(gate, up, ld_in, dim, out, ld_out);
  WORKER_CUDA_CHECK_LAUNCH("swiglu_f16_kernel");
}

}  // namespace worker::gpu
