// Kernel, launcher and typed entry of norm.cuh.
//
// Work split. A row's sum of squares needs the whole row, but one block per row leaves a decode step
// (one to sixteen rows) on one SM per row, where the conversions of 3584 outputs (the int8 blocks'
// warp reductions and divisions) run one after the other. So for up to k_slice_max_rows rows a row is
// cut into slices of k_threads outputs, one block per slice, and EVERY block of the row computes the
// whole row's sum of squares itself (re-reading the row from L2: 14 KB for Qwen2.5-7B) in the same
// fixed order, then converts only its slice. Prefill (many rows) keeps one block per row. The sum's
// order depends only on k_threads (thread t adds float4 chunks t, t + k_threads, ...), never on the
// slicing, so both splits give the same bits and a row's result never depends on the number of rows.
#include "gpu/norm.cuh"

#include <cstdint>
#include <string>

#include "gpu/block_trace.cuh"
#include "gpu/gpu_error.hpp"
#include "gpu/launch.cuh"
#include "gpu/q8_act.cuh"

namespace worker::gpu {

namespace {

constexpr int k_threads = 128;            // threads of a block; also the slice width (outputs per block)
constexpr int k_max_dim = 8192;
constexpr int k_max_chunks = k_max_dim / 4 / k_threads;  // float4 chunks per thread for the sum
constexpr std::uint32_t k_slice_max_rows = 16;           // up to this many rows (decode): a block per slice
// How a launch splits its rows: a block per row (prefill), or a block per slice of k_threads outputs
// (decode, up to k_slice_max_rows rows). The one-row sliced launch (decode at batch 1) is its own
// instantiation only so that it may prefer its own shared-memory carveout: 25 %, the rest serving as L1
// for the matvec blocks co-resident under PDL (a block needs 33 KB of shared memory, and a decode
// launch puts few blocks on an SM). Measured with the kernel shared by every launch (H200 run S21-10,
// Q8_0 batch 1, three pairs): 434.7 / 434.9 / 434.2 tok/s against 430.7 / 429.2 / 430.7, but prefill
// −2.8 % (its one-block-a-row launches then fit fewer blocks to an SM); for every sliced launch (run
// S22-3, with the session's other changes) Q8_0 batch 4 and 16 lost 1.3–1.5 %.
enum class norm_split { whole_rows, sliced, sliced_one_row };
constexpr int k_one_row_carveout = 25;

template <norm_split kSplit>
__global__ void __launch_bounds__(k_threads) rmsnorm_kernel(const rmsnorm_args a) {
  constexpr bool kSliced = kSplit != norm_split::whole_rows;
  // Launched as a programmatic dependent (a.pdl): wait for the producer of h. Then a programmatic
  // dependent of this grid (the next matvec) may start: it only loads weights until this grid has
  // completed (its own griddepcontrol.wait).
  block_tracer bt;
  bt.begin();
  __shared__ __align__(16) float xs[k_max_dim];  // the row (after the residual add)
  __shared__ double part[k_threads / 32];
  const std::uint32_t row = blockIdx.y;
  const std::uint32_t t = threadIdx.x;
  // This block's outputs: [begin, end). Unsliced, the block covers the whole row.
  const std::uint32_t width = kSliced ? k_threads : a.dim;
  const std::uint32_t begin = blockIdx.x * width;
  const std::uint32_t end = min(begin + width, a.dim);
  // The weight of this thread's first output (a constant: it may be read before the wait), loaded
  // before the reduction so that its latency is off the critical path.
  const float w0 = begin + t < end ? a.weight[begin + t] : 0.0f;
  if (a.early_trigger) asm volatile("griddepcontrol.launch_dependents;");
  bt.claim();
  asm volatile("griddepcontrol.wait;" ::: "memory");
  bt.waited();
  if (!a.early_trigger && !a.trigger_after_sum) asm volatile("griddepcontrol.launch_dependents;");

  float* h = a.h + static_cast<std::size_t>(row) * a.ldh;
  const float* delta = a.delta ? a.delta + static_cast<std::size_t>(row) * a.ld_delta : nullptr;
  const std::uint32_t nchunk = a.dim / 4;
  // All loads first (up to k_max_chunks float4 per thread in flight), then the sum.
  float4 v[k_max_chunks];
#pragma unroll
  for (int k = 0; k < k_max_chunks; ++k) {
    const std::uint32_t c = k * k_threads + t;
    if (c < nchunk) v[k] = reinterpret_cast<const float4*>(h)[c];
  }
  if (delta) {
    // One slice per row here (the launcher's rule), so this block owns the whole row of h.
#pragma unroll
    for (int k = 0; k < k_max_chunks; ++k) {
      const std::uint32_t c = k * k_threads + t;
      if (c < nchunk) {
        const float4 d = reinterpret_cast<const float4*>(delta)[c];
        v[k] = make_float4(__fadd_rn(v[k].x, d.x), __fadd_rn(v[k].y, d.y), __fadd_rn(v[k].z, d.z), __fadd_rn(v[k].w, d.w));
        reinterpret_cast<float4*>(h)[c] = v[k];
      }
    }
  }
  // Sum of squares in double: four running sums (one per float4 component, chunks in order), then
  // (s0 + s1) + (s2 + s3), a warp butterfly, and the four warps as (w0 + w1) + (w2 + w3).
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
#pragma unroll
  for (int k = 0; k < k_max_chunks; ++k) {
    const std::uint32_t c = k * k_threads + t;
    if (c < nchunk) {
      s0 = fma(static_cast<double>(v[k].x), static_cast<double>(v[k].x), s0);
      s1 = fma(static_cast<double>(v[k].y), static_cast<double>(v[k].y), s1);
      s2 = fma(static_cast<double>(v[k].z), static_cast<double>(v[k].z), s2);
      s3 = fma(static_cast<double>(v[k].w), static_cast<double>(v[k].w), s3);
      reinterpret_cast<float4*>(xs)[c] = v[k];
    }
  }
  double ss = (s0 + s1) + (s2 + s3);
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if ((t & 31) == 0) part[t >> 5] = ss;
  __syncthreads();
  static_assert(k_threads == 128, "the cross-warp sum below adds four warps");
  const double tot = (part[0] + part[1]) + (part[2] + part[3]);
  if (a.trigger_after_sum && !a.early_trigger) asm volatile("griddepcontrol.launch_dependents;");
  const float mean = static_cast<float>(tot / static_cast<double>(a.dim));
  const float scale = __fdiv_rn(1.0f, __fsqrt_rn(__fadd_rn(mean, a.eps)));

  const int lane = static_cast<int>(t & 31);
  for (std::uint32_t base = begin; base < end; base += k_threads) {
    const std::uint32_t i = base + t;
    const bool in = i < end;
    const float w = base == begin ? w0 : (in ? a.weight[i] : 0.0f);
    const float y = in ? __fmul_rn(__fmul_rn(xs[i], scale), w) : 0.0f;
    if (in && a.out_f32) a.out_f32[static_cast<std::size_t>(row) * a.ld_f32 + i] = y;
    if (in && a.out_f16) a.out_f16[static_cast<std::size_t>(row) * a.ld_f16 + i] = __float2half_rn(y);
    if (a.out_q8) {
      // A warp holds 32 consecutive elements: one q8 block (dim and the slice bounds are multiples of
      // 32, so a warp is either entirely inside or entirely outside the slice).
      if (base + (t & ~31u) < end && a.q8_sb_minor) {
        const std::size_t at = static_cast<std::size_t>(row) * a.ld_q8;
        q8::quantize_block_sb_minor(y, lane, a.out_q8 + at, a.out_q8_lo + at, a.out_ds + static_cast<std::size_t>(row) * a.ld_ds,
                                    i & ~31u, a.dim / 256);
      } else if (base + (t & ~31u) < end) {
        const std::size_t off = static_cast<std::size_t>(row) * a.ld_q8 + (i & ~31u);
        q8::quantize_block(y, lane, a.out_q8 + off, a.out_q8_lo + off, a.out_ds + static_cast<std::size_t>(row) * a.ld_ds + i / 32);
      }
    }
  }
  bt.end(traced_kernel::rmsnorm);
}

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

}  // namespace

void rmsnorm_fused(const rmsnorm_args& a, cudaStream_t stream) {
  auto require = [](bool ok, const char* what) {
    if (!ok) throw gpu_error(gpu_error_code::invalid_argument, std::string("rmsnorm_fused: ") + what);
  };
  require(a.h && a.weight && a.dim > 0 && a.dim <= k_max_dim && a.dim % 4 == 0, "bad dims");
  require(a.ldh >= a.dim && (!a.delta || a.ld_delta >= a.dim), "bad strides");
  // The sum reads h (and delta) as float4.
  require(a.ldh % 4 == 0 && aligned16(a.h) && (!a.delta || (a.ld_delta % 4 == 0 && aligned16(a.delta))),
          "h and delta rows must be 16-byte aligned");
  require(!a.out_q8 || (a.dim % 32 == 0 && a.out_q8_lo && a.out_ds && a.ld_q8 >= a.dim && a.ld_ds >= a.dim / 32),
          "bad q8 output");
  require(a.n <= 65535, "at most 65535 rows per launch (grid y)");
  require(!a.q8_sb_minor || (a.out_q8 && a.n == 1 && a.dim % 256 == 0), "superblock-minor q8 output: one row, dim % 256 == 0");
  if (a.n == 0) return;
  // With delta a block rewrites h, which the other blocks of its row would read: one block per row.
  const std::uint32_t slices = (a.delta || a.n > k_slice_max_rows) ? 1 : (a.dim + k_threads - 1) / k_threads;
  if (slices == 1) {
    launch_maybe_pdl(rmsnorm_kernel<norm_split::whole_rows>, dim3(1, a.n), dim3(k_threads), a.pdl, stream, a);
  } else if (a.n > 1) {
    launch_maybe_pdl(rmsnorm_kernel<norm_split::sliced>, dim3(slices, a.n), dim3(k_threads), a.pdl, stream, a);
  } else {
    const auto one_row = rmsnorm_kernel<norm_split::sliced_one_row>;
    default_smem_carveout(reinterpret_cast<const void*>(one_row), k_one_row_carveout);
    launch_maybe_pdl(one_row, dim3(slices, 1), dim3(k_threads), a.pdl, stream, a);
  }
}

}  // namespace worker::gpu
