// Kernels of dequant.cuh: load-time re-layout, fp16 dequantization tiles, embedding gather.
#include "gpu/dequant.cuh"

#include <string>

#include "gpu/block_trace.cuh"
#include "gpu/gpu_error.hpp"
#include "gpu/quant_blocks.cuh"

namespace worker::gpu {

namespace {

using model::ggml_type;

// --- tier 1: kernels ----------------------------------------------------------------------------

// One thread per block: split `raw` ggml blocks into the qs / aux / d parts.
template <ggml_type T>
__global__ void repack_kernel(const std::uint8_t* __restrict__ raw, std::size_t first, std::size_t n,
                              std::uint8_t* __restrict__ qs, std::uint8_t* __restrict__ aux,
                              std::uint16_t* __restrict__ d) {
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const std::size_t b = first + i;
  if constexpr (T == ggml_type::q8_0) {
    const std::uint8_t* src = raw + i * 34;
    d[b] = static_cast<std::uint16_t>(src[0] | (src[1] << 8));
    for (int k = 0; k < 32; ++k) qs[b * 32 + k] = src[2 + k];
  } else if constexpr (T == ggml_type::q4_0) {
    const std::uint8_t* src = raw + i * 18;
    d[b] = static_cast<std::uint16_t>(src[0] | (src[1] << 8));
    for (int k = 0; k < 16; ++k) qs[b * 16 + k] = src[2 + k];
  } else if constexpr (T == ggml_type::q5_0) {
    const std::uint8_t* src = raw + i * 22;
    d[b] = static_cast<std::uint16_t>(src[0] | (src[1] << 8));
    reinterpret_cast<std::uint32_t*>(aux)[b] =
        src[2] | (src[3] << 8) | (src[4] << 16) | (static_cast<std::uint32_t>(src[5]) << 24);
    for (int k = 0; k < 16; ++k) qs[b * 16 + k] = src[6 + k];
  } else if constexpr (T == ggml_type::q6_k) {
    const std::uint8_t* src = raw + i * 210;
    for (int k = 0; k < 192; ++k) qs[b * 192 + k] = src[k];      // ql[128] then qh[64]
    for (int k = 0; k < 16; ++k) aux[b * 16 + k] = src[192 + k];  // int8 scales
    d[b] = static_cast<std::uint16_t>(src[208] | (src[209] << 8));
  }
}

// One thread per 8 output elements.
__global__ void dequant_f16_kernel(device_matrix w, std::uint32_t row0, std::uint32_t n_rows, __half* __restrict__ out) {
  const std::size_t groups_per_row = w.cols / 8;
  const std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  if (i >= groups_per_row * n_rows) return;
  const std::uint32_t r = static_cast<std::uint32_t>(i / groups_per_row);
  const std::uint32_t c = static_cast<std::uint32_t>(i % groups_per_row) * 8;
  float v[8];
  blocks::dequant8(w, row0 + r, c, v);
  __align__(16) __half h[8];
  for (int k = 0; k < 8; ++k) h[k] = __float2half_rn(v[k]);
  *reinterpret_cast<uint4*>(out + static_cast<std::size_t>(r) * w.cols + c) = *reinterpret_cast<const uint4*>(h);
}

__global__ void gather_kernel(device_matrix w, const std::int32_t* __restrict__ ids, std::uint32_t n,
                              float* __restrict__ out, std::uint32_t ldo, const std::int32_t* __restrict__ from,
                              const std::int32_t* __restrict__ from_ids) {
  block_tracer bt;
  bt.begin();
  bt.claim();
  const std::uint32_t t = blockIdx.y;
  const std::uint32_t c = (blockIdx.x * blockDim.x + threadIdx.x) * 8;
  if (t >= n || c >= w.cols) return;
  const std::int32_t src = from ? from[t] : -1;
  const std::int32_t id = src >= 0 ? from_ids[src] : ids[t];
  float v[8];
  if (id < 0 || static_cast<std::uint32_t>(id) >= w.rows) {
    for (int k = 0; k < 8; ++k) v[k] = __int_as_float(0x7fc00000);
  } else {
    blocks::dequant8(w, static_cast<std::uint32_t>(id), c, v);
  }
  float* o = out + static_cast<std::size_t>(t) * ldo + c;
  for (int k = 0; k < 8; ++k) o[k] = v[k];
  bt.end(traced_kernel::gather);
}

template <ggml_type T>
void launch_repack(const void* raw, std::size_t first, std::size_t n, void* dst, const device_layout& l, cudaStream_t s) {
  auto* base = static_cast<std::uint8_t*>(dst);
  const unsigned threads = 256;
  const unsigned grid = static_cast<unsigned>((n + threads - 1) / threads);
  repack_kernel<T><<<grid, threads, 0, s>>>(static_cast<const std::uint8_t*>(raw), first, n, base,
                                            base + l.aux_offset, reinterpret_cast<std::uint16_t*>(base + l.d_offset));
}

void require(bool ok, const std::string& what) {
  if (!ok) throw gpu_error(gpu_error_code::invalid_argument, what);
}

}  // namespace

// --- tiers 2 and 3: launchers and typed entries ---------------------------------------------------

void repack_blocks(ggml_type type, const void* raw, std::size_t first_block, std::size_t n_blocks, void* dst_base,
                   const device_layout& layout, cudaStream_t stream) {
  if (n_blocks == 0 || !layout.split) return;
  switch (type) {
    case ggml_type::q8_0: launch_repack<ggml_type::q8_0>(raw, first_block, n_blocks, dst_base, layout, stream); break;
    case ggml_type::q4_0: launch_repack<ggml_type::q4_0>(raw, first_block, n_blocks, dst_base, layout, stream); break;
    case ggml_type::q5_0: launch_repack<ggml_type::q5_0>(raw, first_block, n_blocks, dst_base, layout, stream); break;
    case ggml_type::q6_k: launch_repack<ggml_type::q6_k>(raw, first_block, n_blocks, dst_base, layout, stream); break;
    default: require(false, "repack_blocks: type has no split layout");
  }
  WORKER_CUDA_CHECK_LAUNCH("repack_kernel");
}

void dequantize_rows_f16(const device_matrix& w, std::uint32_t row0, std::uint32_t n_rows, __half* out,
                         cudaStream_t stream) {
  require(cuda_supports(w.type), "dequantize_rows_f16: unsupported type");
  require(row0 + static_cast<std::uint64_t>(n_rows) <= w.rows, "dequantize_rows_f16: rows out of range");
  require(w.cols % 8 == 0, "dequantize_rows_f16: cols must be a multiple of 8");
  if (n_rows == 0) return;
  const std::size_t total = static_cast<std::size_t>(n_rows) * (w.cols / 8);
  const unsigned threads = 256;
  dequant_f16_kernel<<<static_cast<unsigned>((total + threads - 1) / threads), threads, 0, stream>>>(w, row0, n_rows, out);
  WORKER_CUDA_CHECK_LAUNCH("dequant_f16_kernel");
}

void gather_rows_f32(const device_matrix& w, const std::int32_t* ids, std::uint32_t n, float* out, std::uint32_t ldo,
                     cudaStream_t stream, const std::int32_t* from, const std::int32_t* from_ids) {
  require(cuda_supports(w.type), "gather_rows_f32: unsupported type");
  require(w.cols % 8 == 0 && ldo >= w.cols, "gather_rows_f32: bad shape");
  require(!from || from_ids, "gather_rows_f32: redirected rows need from_ids");
  if (n == 0) return;
  const unsigned threads = 128;
  dim3 grid((w.cols / 8 + threads - 1) / threads, n);
  gather_kernel<<<grid, threads, 0, stream>>>(w, ids, n, out, ldo, from, from_ids);
  WORKER_CUDA_CHECK_LAUNCH("gather_kernel");
}

}  // namespace worker::gpu
