// Kernels, launchers and typed entry of sampling.cuh.
#include "gpu/sampling.cuh"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <cuda/functional>

#include <cmath>

#include "gpu/block_trace.cuh"
#include "gpu/gpu_error.hpp"

namespace worker::gpu {

namespace {

constexpr int k_threads = 1024;

__host__ __device__ inline void philox_round(std::uint32_t c[4], std::uint32_t k[2]) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(0xD2511F53u) * c[0];
  const std::uint64_t p1 = static_cast<std::uint64_t>(0xCD9E8D57u) * c[2];
  const std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
  const std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
  const std::uint32_t n0 = hi1 ^ c[1] ^ k[0], n2 = hi0 ^ c[3] ^ k[1];
  c[0] = n0;
  c[1] = lo1;
  c[2] = n2;
  c[3] = lo0;
  k[0] += 0x9E3779B9u;
  k[1] += 0xBB67AE85u;
}

__host__ __device__ inline double philox_uniform(std::uint64_t seed, std::uint64_t position) {
  std::uint32_t c[4] = {static_cast<std::uint32_t>(position), static_cast<std::uint32_t>(position >> 32), 0u, 0u};
  std::uint32_t k[2] = {static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)};
  for (int r = 0; r < 10; ++r) philox_round(c, k);
  const std::uint64_t bits = ((static_cast<std::uint64_t>(c[0]) << 32) | c[1]) >> 11;
  return static_cast<double>(bits) * (1.0 / 9007199254740992.0);
}

__device__ inline bool finite(float x) { return isfinite(x); }

// Step 1: one block per row, threads over the row's (token, count) pairs (distinct tokens).
__global__ void penalty_kernel(float* logits, std::uint32_t vocab, const sample_params* params,
                               const std::int32_t* tokens, const std::int32_t* counts) {
  const sample_params p = params[blockIdx.x];
  const bool active = p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  if (!active) return;
  float* row = logits + static_cast<std::size_t>(blockIdx.x) * vocab;
  for (std::uint32_t i = threadIdx.x; i < p.penalty_count; i += blockDim.x) {
    const std::int32_t t = tokens[p.penalty_begin + i];
    if (t < 0 || static_cast<std::uint32_t>(t) >= vocab) continue;
    float l = row[t];
    if (p.repetition_penalty != 1.0f) l = l > 0.0f ? __fdiv_rn(l, p.repetition_penalty) : __fmul_rn(l, p.repetition_penalty);
    l = __fsub_rn(l, __fadd_rn(__fmul_rn(static_cast<float>(counts[p.penalty_begin + i]), p.frequency_penalty), p.presence_penalty));
    row[t] = l;
  }
}

// Sort keys: finite logits as they are, everything else -inf (excluded later by the finite count).
__global__ void sort_keys_kernel(const float* logits, std::uint32_t vocab, float* keys, std::int32_t* ids) {
  const std::size_t row = blockIdx.y;
  for (std::uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < vocab; i += gridDim.x * blockDim.x) {
    const float l = logits[row * vocab + i];
    keys[row * vocab + i] = finite(l) ? l : -INFINITY;
    ids[row * vocab + i] = static_cast<std::int32_t>(i);
  }
}

struct argmax_pair {
  float v;
  std::int32_t i;
};
struct argmax_op {
  __device__ argmax_pair operator()(const argmax_pair& a, const argmax_pair& b) const {
    // Larger value wins; equal values: lower id. NaN never wins (as in the CPU's `>` scan).
    if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
    if (isnan(a.v) && !isnan(b.v)) return b;
    return a;
  }
};

// Greedy: block b of row r takes the max (lowest id on ties) of its slice of the vocabulary; the row's
// last block to finish (a counter per row) reduces the blocks' maxima in block order and writes the
// token. One launch instead of a first pass and a second kernel: the step's tail is a kernel boundary
// shorter.
__global__ void argmax_kernel(const float* logits, std::uint32_t vocab, const sample_params* params, float* part_v,
                              std::int32_t* part_i, std::uint32_t* done, std::int32_t* out) {
  using reduce_a = cub::BlockReduce<argmax_pair, 256>;
  __shared__ typename reduce_a::TempStorage tmp;
  __shared__ bool last;
  block_tracer bt;
  bt.begin();
  bt.claim();
  const std::uint32_t row = blockIdx.y;
  if (params[row].temperature > 0.0f) return;
  const float* l = logits + static_cast<std::size_t>(row) * vocab;
  const std::uint32_t per = (vocab + gridDim.x - 1) / gridDim.x;
  const std::uint32_t b = blockIdx.x * per, e = min(vocab, b + per);
  argmax_pair best{NAN, INT32_MAX};
  for (std::uint32_t i = b + threadIdx.x; i < e; i += blockDim.x) best = argmax_op()(best, argmax_pair{l[i], static_cast<std::int32_t>(i)});
  const argmax_pair r = reduce_a(tmp).Reduce(best, argmax_op());
  if (threadIdx.x == 0) {
    part_v[row * gridDim.x + blockIdx.x] = r.v;
    part_i[row * gridDim.x + blockIdx.x] = r.i;
    __threadfence();  // the maxima are visible before the counter says so
    last = atomicAdd(&done[row], 1u) == gridDim.x - 1;
  }
  __syncthreads();  // `last`, and tmp free again
  if (last) {
    __threadfence();
    argmax_pair m{NAN, INT32_MAX};
    if (threadIdx.x < gridDim.x) {
      m = argmax_pair{__ldcg(&part_v[row * gridDim.x + threadIdx.x]), __ldcg(&part_i[row * gridDim.x + threadIdx.x])};
    }
    const argmax_pair w = reduce_a(tmp).Reduce(m, argmax_op());
    if (threadIdx.x == 0) {
      out[row] = w.i == INT32_MAX ? 0 : w.i;  // all NaN: id 0, as the CPU's scan
      done[row] = 0;  // ready for the next call (kernels on one stream do not overlap)
    }
  }
  bt.end(traced_kernel::argmax);
}

// Steps 2-7: one block per row.
__global__ void __launch_bounds__(k_threads) select_kernel(const float* logits, std::uint32_t vocab,
                                                           const sample_params* params, const float* sorted_keys,
                                                           const std::int32_t* sorted_ids, std::int32_t* out) {
  using reduce_f = cub::BlockReduce<float, k_threads>;
  using reduce_d = cub::BlockReduce<double, k_threads>;
  using reduce_i = cub::BlockReduce<int, k_threads>;
  using scan_d = cub::BlockScan<double, k_threads>;
  __shared__ union {
    typename reduce_f::TempStorage f;
    typename reduce_d::TempStorage d;
    typename reduce_i::TempStorage i;
    typename scan_d::TempStorage s;
  } tmp;
  __shared__ double sh_d;
  __shared__ int sh_i;
  __shared__ float sh_f;

  const std::uint32_t row = blockIdx.x;
  const sample_params p = params[row];
  const float* l = logits + static_cast<std::size_t>(row) * vocab;

  if (p.temperature <= 0.0f) return;  // greedy: argmax_kernel wrote the token

  const bool sorted = p.top_k > 0 || p.top_p < 1.0f;
  const float* keys = sorted ? sorted_keys + static_cast<std::size_t>(row) * vocab : l;
  const std::int32_t* ids = sorted ? sorted_ids + static_cast<std::size_t>(row) * vocab : nullptr;

  // Finite count and l_max.
  int nf = 0;
  float mx = -INFINITY;
  for (std::uint32_t i = threadIdx.x; i < vocab; i += k_threads) {
    const float v = l[i];
    if (finite(v)) {
      ++nf;
      mx = fmaxf(mx, v);
    }
  }
  nf = reduce_i(tmp.i).Sum(nf);
  if (threadIdx.x == 0) sh_i = nf;
  __syncthreads();
  nf = sh_i;
  mx = reduce_f(tmp.f).Reduce(mx, cuda::maximum<>{});
  if (threadIdx.x == 0) sh_f = mx;
  __syncthreads();
  const double l_max = sh_f;
  if (nf == 0) {
    if (threadIdx.x == 0) out[row] = -1;  // no finite logit: the caller reports invalid_argument
    return;
  }

  // Candidate c (0-based in draw order) is keys[c] in the sorted case; in id order it is the c-th
  // finite logit, which we address by id and skip non-finite entries (they contribute 0 below).
  std::uint32_t n = sorted ? static_cast<std::uint32_t>(nf) : vocab;
  if (sorted && p.top_k > 0 && p.top_k < n) n = p.top_k;
  auto logit_at = [&](std::uint32_t c) { return keys[c]; };
  auto valid_at = [&](std::uint32_t c) { return sorted ? true : finite(keys[c]); };

  const double floor_minp = p.min_p > 0.0f ? log(static_cast<double>(p.min_p)) : -INFINITY;
  if (p.top_p < 1.0f || p.min_p > 0.0f) {
    double sum = 0.0;
    for (std::uint32_t c = threadIdx.x; c < n; c += k_threads) {
      if (valid_at(c)) sum += exp(static_cast<double>(logit_at(c)) - l_max);
    }
    sum = reduce_d(tmp.d).Sum(sum);
    if (threadIdx.x == 0) sh_d = sum;
    __syncthreads();
    sum = sh_d;
    if (p.top_p < 1.0f) {  // sorted here
      // First c with cum(c) >= top_p; keep c + 1 candidates.
      double carry = 0.0;
      std::uint32_t keep = n;
      for (std::uint32_t base = 0; base < n; base += k_threads) {
        const std::uint32_t c = base + threadIdx.x;
        const double v = c < n ? exp(static_cast<double>(logit_at(c)) - l_max) / sum : 0.0;
        double incl;
        double total;
        scan_d(tmp.s).InclusiveSum(v, incl, total);
        incl += carry;
        const int hit = c < n && incl >= static_cast<double>(p.top_p) ? static_cast<int>(c) : INT32_MAX;
        __syncthreads();
        const int first = reduce_i(tmp.i).Reduce(hit, cuda::minimum<>{});
        if (threadIdx.x == 0) sh_i = first;
        __syncthreads();
        if (sh_i != INT32_MAX) {
          keep = static_cast<std::uint32_t>(sh_i) + 1;
          break;
        }
        carry += total;
        __syncthreads();
      }
      n = keep;
    }
  }
  // min_p: in the sorted case a prefix; in id order a mask.
  auto kept = [&](std::uint32_t c) {
    if (!valid_at(c)) return false;
    return !(static_cast<double>(logit_at(c)) - l_max < floor_minp);
  };
  if (sorted && p.min_p > 0.0f) {
    int cnt = 0;
    for (std::uint32_t c = threadIdx.x; c < n; c += k_threads) cnt += kept(c) ? 1 : 0;
    cnt = reduce_i(tmp.i).Sum(cnt);
    if (threadIdx.x == 0) sh_i = cnt;
    __syncthreads();
    n = static_cast<std::uint32_t>(sh_i);
  }

  // Final distribution and draw.
  const double inv_t = 1.0 / static_cast<double>(p.temperature);
  double S = 0.0;
  for (std::uint32_t c = threadIdx.x; c < n; c += k_threads) {
    if (kept(c)) S += exp((static_cast<double>(logit_at(c)) - l_max) * inv_t);
  }
  __syncthreads();
  S = reduce_d(tmp.d).Sum(S);
  if (threadIdx.x == 0) sh_d = S;
  __syncthreads();
  S = sh_d;
  const double u = philox_uniform(p.seed, p.position);
  double carry = 0.0;
  int chosen = INT32_MAX, last = -1;
  for (std::uint32_t base = 0; base < n; base += k_threads) {
    const std::uint32_t c = base + threadIdx.x;
    const bool in = c < n && kept(c);
    const double v = in ? exp((static_cast<double>(logit_at(c)) - l_max) * inv_t) / S : 0.0;
    double incl, total;
    scan_d(tmp.s).InclusiveSum(v, incl, total);
    incl += carry;
    const int hit = in && u < incl ? static_cast<int>(c) : INT32_MAX;
    const int lst = in ? static_cast<int>(c) : -1;
    __syncthreads();
    const int first = reduce_i(tmp.i).Reduce(hit, cuda::minimum<>{});
    __syncthreads();
    const int lmax = reduce_i(tmp.i).Reduce(lst, cuda::maximum<>{});
    if (threadIdx.x == 0) {
      sh_i = first;
      if (lmax > last) last = lmax;
    }
    __syncthreads();
    if (sh_i != INT32_MAX) {
      chosen = sh_i;
      break;
    }
    carry += total;
  }
  if (threadIdx.x == 0) {
    const int c = chosen != INT32_MAX ? chosen : last;  // u within rounding of 1: the last candidate
    out[row] = sorted ? ids[c] : c;
  }
}

}  // namespace

double philox_uniform_host(std::uint64_t seed, std::uint64_t position) { return philox_uniform(seed, position); }

std::size_t sample_cub_temp_bytes(std::uint32_t rows, std::uint32_t vocab) {
  std::size_t bytes = 0;
  const int n = static_cast<int>(rows * vocab);
  cub::DeviceSegmentedRadixSort::SortPairsDescending(nullptr, bytes, static_cast<const float*>(nullptr),
                                                     static_cast<float*>(nullptr), static_cast<const std::int32_t*>(nullptr),
                                                     static_cast<std::int32_t*>(nullptr), n, static_cast<int>(rows),
                                                     static_cast<const int*>(nullptr), static_cast<const int*>(nullptr));
  return bytes;
}

namespace {
__global__ void offsets_kernel(int* offsets, std::uint32_t rows, std::uint32_t vocab) {
  for (std::uint32_t r = threadIdx.x; r <= rows; r += blockDim.x) offsets[r] = static_cast<int>(r * vocab);
}
}  // namespace

void sample_rows(float* logits, std::uint32_t rows, std::uint32_t vocab, const sample_params* params,
                 const std::int32_t* penalty_tokens, const std::int32_t* penalty_counts, bool any_penalty,
                 bool any_sampled, bool any_sorted, const sample_workspace& ws, std::int32_t* out, cudaStream_t stream) {
  if (rows == 0) return;
  if (any_penalty) {
    penalty_kernel<<<rows, 128, 0, stream>>>(logits, vocab, params, penalty_tokens, penalty_counts);
    WORKER_CUDA_CHECK_LAUNCH("penalty_kernel");
  }
  static_assert(k_argmax_blocks <= 256, "argmax_kernel's last block reduces one maximum per thread");
  argmax_kernel<<<dim3(k_argmax_blocks, rows), 256, 0, stream>>>(logits, vocab, params, ws.argmax_v, ws.argmax_i,
                                                                 ws.argmax_done, out);
  WORKER_CUDA_CHECK_LAUNCH("argmax_kernel");
  if (!any_sampled) return;
  if (any_sorted) {
    sort_keys_kernel<<<dim3((vocab + 255) / 256, rows), 256, 0, stream>>>(logits, vocab, ws.keys, ws.ids);
    WORKER_CUDA_CHECK_LAUNCH("sort_keys_kernel");
    offsets_kernel<<<1, 32, 0, stream>>>(ws.offsets, rows, vocab);
    std::size_t bytes = ws.cub_temp_bytes;
    WORKER_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(
        ws.cub_temp, bytes, ws.keys, ws.keys_sorted, ws.ids, ws.ids_sorted, static_cast<int>(rows * vocab),
        static_cast<int>(rows), ws.offsets, ws.offsets + 1, 0, static_cast<int>(sizeof(float) * 8), stream));
  }
  select_kernel<<<rows, k_threads, 0, stream>>>(logits, vocab, params, ws.keys_sorted, ws.ids_sorted, out);
  WORKER_CUDA_CHECK_LAUNCH("select_kernel");
}

}  // namespace worker::gpu
