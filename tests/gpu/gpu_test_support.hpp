// Shared by every GPU test executable: skip (exit 77, CTest SKIPPED) with the reason when there is no
// usable GPU, unless WORKER_ORCD_REQUIRE_GPU=1 (set on the GPU test host), where a missing GPU is a
// failure. Plus seeded random data, device buffers that free themselves, and a parallel loop for the
// fp64 references of full-size shapes.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gpu/dequant.cuh"
#include "gpu/device.hpp"
#include "gpu/device_matrix.hpp"
#include "gpu/gpu_error.hpp"
#include "model/quant.hpp"

namespace worker::gpu::test {

// WORKER_ORCD_GPU_TEST_REDUCED=1: skip the full-size shapes (the compute-sanitizer pass).
inline bool reduced_run() {
  const char* v = std::getenv("WORKER_ORCD_GPU_TEST_REDUCED");
  return v && std::string(v) == "1";
}

inline bool gpu_required() {
  const char* v = std::getenv("WORKER_ORCD_REQUIRE_GPU");
  return v && std::string(v) == "1";
}

// Exits the process before any test runs when there is no usable GPU.
inline bool check_gpu_or_exit() {
  const device_probe p = probe_devices();
  if (p.usable) {
    cudaSetDevice(0);
    return true;
  }
  if (gpu_required()) {
    std::fprintf(stderr, "FAILED: WORKER_ORCD_REQUIRE_GPU=1 but no usable GPU: %s\n", p.reason.c_str());
    std::exit(1);
  }
  std::fprintf(stdout, "SKIPPED: no usable GPU (%s)\n", p.reason.c_str());
  std::fflush(stdout);
  std::exit(77);
}
inline const bool k_gpu_checked = check_gpu_or_exit();

// A cudaMalloc'd buffer of T, freed on destruction. Filled with a NaN-ish poison pattern (0xFF bytes)
// so unwritten outputs show up.
template <typename T>
class device_buffer {
 public:
  device_buffer() = default;
  explicit device_buffer(std::size_t n) : n_(n) {
    WORKER_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), std::max<std::size_t>(1, n) * sizeof(T)));
    WORKER_CUDA_CHECK(cudaMemset(p_, 0xFF, std::max<std::size_t>(1, n) * sizeof(T)));
  }
  explicit device_buffer(const std::vector<T>& host) : device_buffer(host.size()) { upload(host); }
  ~device_buffer() { if (p_) cudaFree(p_); }
  device_buffer(device_buffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; }
  device_buffer& operator=(device_buffer&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    WORKER_CUDA_CHECK(cudaMemcpy(p_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    WORKER_CUDA_CHECK(cudaDeviceSynchronize());
    WORKER_CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  T* p_ = nullptr;
  std::size_t n_ = 0;
};

inline std::vector<float> random_normal(std::size_t n, std::uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Runs fn(i) for i in [0, n) on all cores (for fp64 references of full-size shapes).
inline void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn) {
  const unsigned t = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> th;
  for (unsigned k = 0; k < t; ++k) {
    th.emplace_back([&, k] {
      for (std::size_t i = k; i < n; i += t) fn(i);
    });
  }
  for (auto& x : th) x.join();
}

// Random but valid stored bytes for `rows` rows of `cols` elements of `type`: random bits everywhere,
// with the fp16 scale fields set to finite values around `scale` so products stay finite. Every bit
// pattern of the quantized fields is exercised (a far stronger check of the unpacking than quantizing
// smooth data). Float types get uniform values in ±4·scale. Rows are generated in parallel, each from
// its own seeded engine, so the result does not depend on the thread count.
inline std::vector<std::uint8_t> random_blocks(model::ggml_type type, std::size_t rows, std::size_t cols,
                                               std::uint64_t seed, float scale = 0.02f) {
  using model::ggml_type;
  const std::size_t rb = model::row_bytes(type, cols);
  std::vector<std::uint8_t> b(rb * rows);
  const auto& tr = model::traits(type);
  parallel_for(rows, [&](std::size_t r) {
    std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + r);
    std::uint8_t* row = b.data() + r * rb;
    if (type == ggml_type::f32 || type == ggml_type::f16 || type == ggml_type::bf16) {
      std::uniform_real_distribution<float> ud(-4 * scale, 4 * scale);
      for (std::size_t i = 0; i < cols; ++i) {
        const float v = ud(rng);
        if (type == ggml_type::f32) {
          std::memcpy(row + i * 4, &v, 4);
        } else {
          const std::uint16_t h = type == ggml_type::f16 ? model::fp32_to_fp16(v) : model::fp32_to_bf16(v);
          std::memcpy(row + i * 2, &h, 2);
        }
      }
      return;
    }
    for (std::size_t i = 0; i < rb; i += 8) {
      const std::uint64_t v = rng();
      std::memcpy(row + i, &v, std::min<std::size_t>(8, rb - i));
    }
    std::uniform_real_distribution<float> ud(0.5f, 1.5f);
    auto put_half = [&](std::size_t off, float v) {
      const std::uint16_t h = model::fp32_to_fp16(v);
      std::memcpy(row + off, &h, 2);
    };
    for (std::size_t blk = 0; blk < rb / tr.block_bytes; ++blk) {
      const std::size_t o = blk * tr.block_bytes;
      switch (type) {
        case ggml_type::q8_0: put_half(o, scale * ud(rng) / 16); break;
        case ggml_type::q4_0:
        case ggml_type::q5_0: put_half(o, scale * ud(rng) / 4); break;
        case ggml_type::q4_k:
        case ggml_type::q5_k:
          put_half(o, scale * ud(rng) / 64);
          put_half(o + 2, scale * ud(rng) / 32);
          break;
        case ggml_type::q6_k: put_half(o + 208, scale * ud(rng) / 256); break;
        default: break;
      }
    }
  });
  return b;
}

// Dequantizes every row on the CPU with the reference dequantizer (model/quant.hpp).
inline std::vector<float> dequantize_all(model::ggml_type type, const std::vector<std::uint8_t>& data, std::size_t rows,
                                         std::size_t cols) {
  std::vector<float> out(rows * cols);
  const std::size_t rb = model::row_bytes(type, cols);
  parallel_for(rows, [&](std::size_t r) {
    if (type == model::ggml_type::f32) {
      std::memcpy(&out[r * cols], &data[r * rb], cols * 4);
    } else {
      model::dequantize_row(type, &data[r * rb], &out[r * cols], cols);
    }
  });
  return out;
}

// A weight uploaded the way the loader does it: raw ggml bytes to the device, then re-laid out.
struct uploaded_matrix {
  device_buffer<std::uint8_t> mem;
  device_matrix m;
};

inline uploaded_matrix upload_matrix(model::ggml_type type, std::size_t rows, std::size_t cols,
                                     const std::vector<std::uint8_t>& raw) {
  const device_layout l = layout_of(type, rows, cols);
  uploaded_matrix u{device_buffer<std::uint8_t>(l.total_bytes), {}};
  if (l.split) {
    device_buffer<std::uint8_t> tmp(raw);
    repack_blocks(type, tmp.get(), 0, rows * cols / model::traits(type).block_elems, u.mem.get(), l, nullptr);
    WORKER_CUDA_CHECK(cudaDeviceSynchronize());
  } else {
    WORKER_CUDA_CHECK(cudaMemcpy(u.mem.get(), raw.data(), raw.size(), cudaMemcpyHostToDevice));
  }
  u.m = make_device_matrix(type, static_cast<std::uint32_t>(rows), static_cast<std::uint32_t>(cols), u.mem.get());
  return u;
}

}  // namespace worker::gpu::test
