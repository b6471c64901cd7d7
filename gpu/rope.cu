// Kernels, launchers and typed entries of rope.cuh.
#include "gpu/rope.cuh"

#include <string>

#include "gpu/gpu_error.hpp"

namespace worker::gpu {

namespace {

// Grid: (token, slice): the threads of a token's gridDim.y blocks stride over (head, pair) of Q, then
// of K, then over V elements.
__global__ void rope_kv_kernel(const rope_kv_args a) {
  const std::uint32_t t = blockIdx.x;
  const std::int32_t pos = a.token_pos[t];
  const kv_seq_desc seq = a.seqs[a.token_seq[t]];
  if (pos < 0 || pos >= seq.capacity || static_cast<std::uint32_t>(pos) >= a.table_positions) {
    __trap();  // the engine checks positions against the capacity before launching
  }
  const std::uint32_t half = a.n_rot / 2;
  const float2* cs = a.cos_sin + static_cast<std::size_t>(pos) * half;
  const std::uint32_t hd = a.head_dim;

  const std::uint32_t first = blockIdx.y * blockDim.x + threadIdx.x, stride = gridDim.y * blockDim.x;
  // Q: rotate in place.
  float* q = a.q + static_cast<std::size_t>(t) * a.ldq;
  for (std::uint32_t i = first; i < a.n_head * half; i += stride) {
    const std::uint32_t h = i / half, p = i % half;
    float* x = q + h * hd;
    float x0 = x[p], x1 = x[p + half];
    if (a.q_bias) {
      x0 = __fadd_rn(x0, a.q_bias[h * hd + p]);
      x1 = __fadd_rn(x1, a.q_bias[h * hd + p + half]);
    }
    const float2 c = cs[p];
    x[p] = __fsub_rn(__fmul_rn(x0, c.x), __fmul_rn(x1, c.y));
    x[p + half] = __fadd_rn(__fmul_rn(x0, c.y), __fmul_rn(x1, c.x));
  }
  // Q dims past n_rot (none for our models) only get the bias.
  if (a.q_bias && a.n_rot < hd) {
    for (std::uint32_t i = first; i < a.n_head * (hd - a.n_rot); i += stride) {
      const std::uint32_t h = i / (hd - a.n_rot), j = a.n_rot + i % (hd - a.n_rot);
      q[h * hd + j] = __fadd_rn(q[h * hd + j], a.q_bias[h * hd + j]);
    }
  }
  // K: rotate and store.
  const float* k = a.k + static_cast<std::size_t>(t) * a.ldk;
  for (std::uint32_t i = first; i < a.n_head_kv * (hd / 2); i += stride) {
    const std::uint32_t g = i / (hd / 2), p = i % (hd / 2);
    __half* dst = kv_head_ptr(seq, a.layer, 0, g, a.n_head_kv, hd) + static_cast<std::size_t>(pos) * hd;
    // Each thread handles the pair (p, p + hd/2); for p ≥ n_rot/2 both elements are unrotated.
    float x0 = k[g * hd + p], x1 = k[g * hd + p + hd / 2];
    if (a.k_bias) {
      x0 = __fadd_rn(x0, a.k_bias[g * hd + p]);
      x1 = __fadd_rn(x1, a.k_bias[g * hd + p + hd / 2]);
    }
    if (a.n_rot == hd) {
      const float2 c = cs[p];
      const float r0 = __fsub_rn(__fmul_rn(x0, c.x), __fmul_rn(x1, c.y));
      const float r1 = __fadd_rn(__fmul_rn(x0, c.y), __fmul_rn(x1, c.x));
      x0 = r0;
      x1 = r1;
    }
    dst[p] = __float2half_rn(x0);
    dst[p + hd / 2] = __float2half_rn(x1);
  }
  // V: store.
  const float* v = a.v + static_cast<std::size_t>(t) * a.ldv;
  for (std::uint32_t i = first; i < a.n_head_kv * hd; i += stride) {
    const std::uint32_t g = i / hd, d = i % hd;
    float x = v[i];
    if (a.v_bias) x = __fadd_rn(x, a.v_bias[i]);
    kv_head_ptr(seq, a.layer, 1, g, a.n_head_kv, hd)[static_cast<std::size_t>(pos) * hd + d] = __float2half_rn(x);
  }
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
  if (a.n == 0) return;
  rope_kv_kernel<<<dim3(a.n, 8), 128, 0, stream>>>(a);
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
