// Decode matvec kernels against fp64 references computed from the CPU dequantizer (model/quant.hpp),
// for every weight type the CUDA engine supports, over a shape sweep that includes the full Qwen2.5-7B
// shapes (3584², 18944×3584, 3584×18944 and the 152064×3584 output projection).
//
// Tolerances (stated, and why):
// - quantized weights take two-level int8 activations (q8_act.cuh). Against a reference that uses the
//   SAME activations (replicated on the CPU: x ≈ d_hi·q_hi + d_lo·q_lo), only fp32 rounding differs:
//   |y - ref| ≤ 1e-5·Σ|w·x| per element (the fp32 summation error bound is ~1e-6 at these lengths;
//   any indexing or unpacking mistake gives O(1) relative errors).
// - against the fp32-activation reference (what the CPU engine computes), the activation error
//   (≤ max|x|/64516 per element) must stay below ‖y - ref‖/‖ref‖ ≤ 2e-4 (over ≥ 64 outputs).
// - float weights (F32 F16 BF16) take fp32 activations: |y - ref| ≤ 1e-5·Σ|w·x|.
// Batch invariance: each column of a 1..16-column launch is bit-identical to the same column alone.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "gpu/matvec.cuh"
#include "tests/gpu/gpu_test_support.hpp"

namespace {

using namespace worker::gpu;
using namespace worker::gpu::test;
using worker::model::ggml_type;

struct shape {
  std::size_t rows, cols;
};

// The CPU replica of quantize_q8 (two levels): x → d_hi·q_hi + d_lo·q_lo (as doubles) per block.
std::vector<double> q8_dequantized(const std::vector<float>& x, std::size_t k) {
  std::vector<double> out(x.size());
  for (std::size_t b = 0; b < x.size() / 32; ++b) {
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[b * 32 + i]));
    const float dh = amax / 127.0f;
    float qh[32], r[32], rmax = 0.0f;
    for (int i = 0; i < 32; ++i) {
      qh[i] = dh == 0.0f ? 0.0f : std::nearbyint(x[b * 32 + i] / dh);
      r[i] = x[b * 32 + i] - dh * qh[i];
      rmax = std::max(rmax, std::fabs(r[i]));
    }
    const float dl = rmax / 127.0f;
    for (int i = 0; i < 32; ++i) {
      const float ql = dl == 0.0f ? 0.0f : std::nearbyint(r[i] / dl);
      out[b * 32 + i] = static_cast<double>(dh) * qh[i] + static_cast<double>(dl) * ql;
    }
  }
  (void)k;
  return out;
}

struct reference {
  std::vector<double> y;     // Σ w·x (x as the kernel sees it)
  std::vector<double> mag;   // Σ |w·x|
  std::vector<double> y_f32; // Σ w·x with the fp32 activations
};

reference compute_reference(const std::vector<float>& w, std::size_t rows, std::size_t cols,
                            const std::vector<float>& x, std::size_t ncols, bool q8) {
  reference r;
  r.y.resize(rows * ncols);
  r.mag.resize(rows * ncols);
  r.y_f32.resize(rows * ncols);
  std::vector<double> xs(x.size());
  if (q8) {
    xs = q8_dequantized(x, cols);
  } else {
    for (std::size_t i = 0; i < x.size(); ++i) xs[i] = x[i];
  }
  parallel_for(rows, [&](std::size_t m) {
    const float* wr = &w[m * cols];
    for (std::size_t c = 0; c < ncols; ++c) {
      double s = 0, a = 0, f = 0;
      for (std::size_t k = 0; k < cols; ++k) {
        s += wr[k] * xs[c * cols + k];
        a += std::fabs(wr[k] * xs[c * cols + k]);
        f += static_cast<double>(wr[k]) * x[c * cols + k];
      }
      r.y[c * rows + m] = s;
      r.mag[c * rows + m] = a;
      r.y_f32[c * rows + m] = f;
    }
  });
  return r;
}

struct activations {
  device_buffer<float> f32;
  device_buffer<std::int8_t> q8, q8_lo;
  device_buffer<float4> ds;
  matvec_x x;
};

activations make_activations(const std::vector<float>& x, std::size_t cols, std::size_t ncols) {
  activations a{device_buffer<float>(x), device_buffer<std::int8_t>(cols * ncols), device_buffer<std::int8_t>(cols * ncols),
                device_buffer<float4>(cols / 32 * ncols), {}};
  a.x.f32 = a.f32.get();
  a.x.ld_f32 = static_cast<std::uint32_t>(cols);
  a.x.ncols = static_cast<std::uint32_t>(ncols);
  if (cols % 32 == 0) {
    quantize_q8(a.f32.get(), static_cast<std::uint32_t>(cols), static_cast<std::uint32_t>(cols),
                static_cast<std::uint32_t>(ncols), a.q8.get(), a.q8_lo.get(), static_cast<std::uint32_t>(cols), a.ds.get(),
                static_cast<std::uint32_t>(cols / 32), nullptr);
    a.x.q8 = a.q8.get();
    a.x.q8_lo = a.q8_lo.get();
    a.x.ld_q8 = static_cast<std::uint32_t>(cols);
    a.x.ds = a.ds.get();
    a.x.ld_ds = static_cast<std::uint32_t>(cols / 32);
  }
  return a;
}

// A random rows × cols matrix of `type` and one column of random activations; run(variant) is the
// matvec's output under that tuning variant (set_matvec_variant).
struct one_column_case {
  std::size_t rows;
  uploaded_matrix dm;
  activations act;
  device_buffer<float> y;
  one_column_case(ggml_type type, std::size_t rows_, std::size_t cols, std::uint64_t& seed)
      : rows(rows_),
        dm(upload_matrix(type, rows_, cols, random_blocks(type, rows_, cols, ++seed))),
        act(make_activations(random_normal(cols, ++seed), cols, 1)),
        y(rows_) {}
  std::vector<float> run(const char* variant) {
    set_matvec_variant(variant);
    matvec_out out{dm.m, nullptr, y.get(), static_cast<std::uint32_t>(rows), false};
    matvec(std::span(&out, 1), act.x, nullptr);
    return y.download();
  }
};

std::vector<shape> shapes_for(ggml_type t) {
  const bool kq = t == ggml_type::q4_k || t == ggml_type::q5_k || t == ggml_type::q6_k;
  std::vector<shape> s;
  if (!kq) s.push_back({5, 64});
  if (t == ggml_type::f16 || t == ggml_type::bf16 || t == ggml_type::f32) s.push_back({3, 8});
  s.insert(s.end(), {{1, 256}, {3, 512}, {67, 1024}, {512, 3584}, {3584, 3584}, {18944, 3584}, {3584, 18944},
                     {152064, 3584}});
  if (reduced_run()) std::erase_if(s, [](const shape& x) { return x.rows * x.cols > (std::size_t{4} << 20); });
  return s;
}

// Mean time of `reps` back-to-back launches on the default stream (after three unmeasured ones), in ms.
double mean_launch_ms(const std::function<void()>& launch, int reps) {
  for (int i = 0; i < 3; ++i) launch();
  cudaEvent_t a, b;
  WORKER_CUDA_CHECK(cudaEventCreate(&a));
  WORKER_CUDA_CHECK(cudaEventCreate(&b));
  WORKER_CUDA_CHECK(cudaEventRecord(a));
  for (int i = 0; i < reps; ++i) launch();
  WORKER_CUDA_CHECK(cudaEventRecord(b));
  WORKER_CUDA_CHECK(cudaEventSynchronize(b));
  float ms = 0;
  WORKER_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
  WORKER_CUDA_CHECK(cudaEventDestroy(a));
  WORKER_CUDA_CHECK(cudaEventDestroy(b));
  return static_cast<double>(ms) / reps;
}

const ggml_type k_types[] = {ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k, ggml_type::q8_0, ggml_type::q4_0,
                             ggml_type::q5_0, ggml_type::f16,  ggml_type::bf16, ggml_type::f32};

}  // namespace

TEST_CASE("matvec matches the fp64 reference for every weight type and shape, including full 7B shapes", "[matvec]") {
  std::uint64_t seed = 1;
  for (const ggml_type type : k_types) {
    for (const shape sh : shapes_for(type)) {
      const std::size_t ncols = sh.rows >= 100000 ? 1 : 2;  // two columns except on the huge output matrix
      INFO("type " << worker::model::type_name(type) << " rows " << sh.rows << " cols " << sh.cols);
      const auto raw = random_blocks(type, sh.rows, sh.cols, ++seed);
      const auto w = dequantize_all(type, raw, sh.rows, sh.cols);
      const auto x = random_normal(sh.cols * ncols, ++seed);
      const bool q8 = matvec_uses_q8(type);
      const reference ref = compute_reference(w, sh.rows, sh.cols, x, ncols, q8);

      uploaded_matrix dm = upload_matrix(type, sh.rows, sh.cols, raw);
      activations act = make_activations(x, sh.cols, ncols);
      device_buffer<float> y(sh.rows * ncols);
      const matvec_out out{dm.m, nullptr, y.get(), static_cast<std::uint32_t>(sh.rows), false};
      matvec(std::span(&out, 1), act.x, nullptr);
      const auto got = y.download();

      std::size_t bad = 0;
      double err2 = 0, ref2 = 0;
      for (std::size_t i = 0; i < got.size(); ++i) {
        const double tol = 1e-5 * ref.mag[i] + 1e-7;
        if (!(std::fabs(got[i] - ref.y[i]) <= tol)) {
          if (bad < 5) WARN("element " << i << " got " << got[i] << " want " << ref.y[i] << " tol " << tol);
          ++bad;
        }
        err2 += (got[i] - ref.y_f32[i]) * (got[i] - ref.y_f32[i]);
        ref2 += ref.y_f32[i] * ref.y_f32[i];
      }
      CHECK(bad == 0);
      // The norm ratio is only a stable statistic over many outputs (one dot product can cancel to ~0).
      if (got.size() >= 64) {
        const double rel = std::sqrt(err2 / ref2);
        INFO("relative error vs the fp32-activation reference: " << rel);
        CHECK(rel <= (q8 ? 2e-4 : 1e-5));
      }
    }
  }
}

TEST_CASE("matvec columns are bit-identical alone and in batches of 2..16 (batch invariance)", "[matvec]") {
  std::uint64_t seed = 1000;
  for (const ggml_type type : k_types) {
    INFO("type " << worker::model::type_name(type));
    const std::size_t rows = 300, cols = 1024;
    const auto raw = random_blocks(type, rows, cols, ++seed);
    uploaded_matrix dm = upload_matrix(type, rows, cols, raw);
    const auto x = random_normal(cols * 16, ++seed);
    activations act = make_activations(x, cols, 16);
    device_buffer<float> y(rows * 16);

    auto run = [&](std::uint32_t first_col, std::uint32_t n) {
      matvec_x xv = act.x;
      xv.f32 += static_cast<std::size_t>(first_col) * cols;
      if (xv.q8) {
        xv.q8 += static_cast<std::size_t>(first_col) * cols;
        xv.q8_lo += static_cast<std::size_t>(first_col) * cols;
        xv.ds += static_cast<std::size_t>(first_col) * cols / 32;
      }
      xv.ncols = n;
      const matvec_out out{dm.m, nullptr, y.get(), static_cast<std::uint32_t>(rows), false};
      matvec(std::span(&out, 1), xv, nullptr);
      return y.download();
    };
    std::vector<std::vector<float>> alone(16);
    for (std::uint32_t c = 0; c < 16; ++c) {
      auto v = run(c, 1);
      alone[c].assign(v.begin(), v.begin() + rows);
    }
    for (const std::uint32_t n : {2u, 3u, 4u, 5u, 8u, 11u, 16u}) {
      const auto v = run(0, n);
      for (std::uint32_t c = 0; c < n; ++c) {
        INFO("batch " << n << " column " << c);
        CHECK(std::memcmp(&v[c * rows], alone[c].data(), rows * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("matvec fuses bias and residual, runs 3 weights in one launch, and fuses SwiGLU", "[matvec]") {
  for (const ggml_type type : {ggml_type::q4_k, ggml_type::q8_0, ggml_type::f16, ggml_type::q6_k}) {
    INFO("type " << worker::model::type_name(type));
    const std::size_t cols = 512, ncols = 3;
    const std::size_t rows[3] = {256, 64, 96};
    std::vector<std::vector<std::uint8_t>> raws;
    std::vector<uploaded_matrix> dms;
    for (int s = 0; s < 3; ++s) {
      raws.push_back(random_blocks(type, rows[s], cols, 77 + s));
      dms.push_back(upload_matrix(type, rows[s], cols, raws.back()));
    }
    const auto x = random_normal(cols * ncols, 5);
    activations act = make_activations(x, cols, ncols);
    std::vector<device_buffer<float>> ys, biases;
    std::vector<std::vector<float>> y0s, bs;
    matvec_out outs[3];
    for (int s = 0; s < 3; ++s) {
      y0s.push_back(random_normal(rows[s] * ncols, 10 + s));
      bs.push_back(random_normal(rows[s], 20 + s));
      ys.emplace_back(y0s.back());
      biases.emplace_back(bs.back());
      outs[s] = {dms[s].m, s != 1 ? biases[s].get() : nullptr, ys[s].get(), static_cast<std::uint32_t>(rows[s]), s != 2};
    }
    matvec(std::span(outs, 3), act.x, nullptr);
    for (int s = 0; s < 3; ++s) {
      INFO("segment " << s);
      const auto w = dequantize_all(type, raws[s], rows[s], cols);
      const reference ref = compute_reference(w, rows[s], cols, x, ncols, matvec_uses_q8(type));
      const auto got = ys[s].download();
      for (std::size_t c = 0; c < ncols; ++c)
        for (std::size_t m = 0; m < rows[s]; ++m) {
          const std::size_t i = c * rows[s] + m;
          double want = ref.y[i] + (s != 1 ? bs[s][m] : 0.0) + (s != 2 ? y0s[s][i] : 0.0);
          REQUIRE(std::fabs(got[i] - want) <= 1e-5 * (ref.mag[i] + std::fabs(want)) + 1e-6);
        }
    }
    // SwiGLU: gate = matrix 0, up = a second matrix of the same shape.
    const auto raw_up = random_blocks(type, rows[0], cols, 99);
    uploaded_matrix up = upload_matrix(type, rows[0], cols, raw_up);
    device_buffer<float> ysw(rows[0] * ncols);
    matvec_swiglu(dms[0].m, up.m, act.x, ysw.get(), static_cast<std::uint32_t>(rows[0]), nullptr);
    const auto got = ysw.download();
    const auto wg = dequantize_all(type, raws[0], rows[0], cols);
    const auto wu = dequantize_all(type, raw_up, rows[0], cols);
    const reference rg = compute_reference(wg, rows[0], cols, x, ncols, matvec_uses_q8(type));
    const reference ru = compute_reference(wu, rows[0], cols, x, ncols, matvec_uses_q8(type));
    for (std::size_t i = 0; i < got.size(); ++i) {
      const double g = rg.y[i], u = ru.y[i];
      const double want = g / (1.0 + std::exp(-g)) * u;
      const double tol = 1e-5 * (rg.mag[i] * std::fabs(u) + ru.mag[i] * std::fabs(g)) + 1e-6;
      REQUIRE(std::fabs(got[i] - want) <= tol);
    }
  }
}

// One column (the fan-out kernels): Q8_0 and F16 copy the bias, and with residual_final the residual,
// before the PDL wait; the result must be the bits of reading them in the epilogue, for row counts
// that leave a block partly past the matrix (the K-quants, which read them in the epilogue, too).
TEST_CASE("one-column matvec with bias and residual copied before the wait gives the same bits", "[matvec]") {
  for (const ggml_type type : {ggml_type::q4_k, ggml_type::q6_k, ggml_type::q8_0, ggml_type::f16}) {
    INFO("type " << worker::model::type_name(type));
    const std::size_t cols = 512;
    const std::size_t rows[3] = {250, 64, 97};
    std::vector<std::vector<std::uint8_t>> raws;
    std::vector<uploaded_matrix> dms;
    std::vector<std::vector<float>> y0s, bs;
    for (int s = 0; s < 3; ++s) {
      raws.push_back(random_blocks(type, rows[s], cols, 177 + s));
      dms.push_back(upload_matrix(type, rows[s], cols, raws.back()));
      y0s.push_back(random_normal(rows[s], 30 + s));
      bs.push_back(random_normal(rows[s], 40 + s));
    }
    const auto x = random_normal(cols, 15);
    activations act = make_activations(x, cols, 1);
    std::vector<std::vector<float>> got[2];
    for (const bool residual_final : {false, true}) {
      std::vector<device_buffer<float>> ys, biases;
      matvec_out outs[3];
      for (int s = 0; s < 3; ++s) {
        ys.emplace_back(y0s[s]);
        biases.emplace_back(bs[s]);
        outs[s] = {dms[s].m, s != 1 ? biases[s].get() : nullptr, ys[s].get(), static_cast<std::uint32_t>(rows[s]), s != 2, residual_final};
      }
      matvec(std::span(outs, 3), act.x, nullptr);
      for (int s = 0; s < 3; ++s) got[residual_final].push_back(ys[s].download());
    }
    for (int s = 0; s < 3; ++s) {
      INFO("segment " << s);
      CHECK(std::memcmp(got[0][s].data(), got[1][s].data(), rows[s] * sizeof(float)) == 0);
      const reference ref = compute_reference(dequantize_all(type, raws[s], rows[s], cols), rows[s], cols, x, 1, matvec_uses_q8(type));
      for (std::size_t m = 0; m < rows[s]; ++m) {
        const double want = ref.y[m] + (s != 1 ? bs[s][m] : 0.0) + (s != 2 ? y0s[s][m] : 0.0);
        REQUIRE(std::fabs(got[1][s][m] - want) <= 1e-5 * (ref.mag[m] + std::fabs(want)) + 1e-6);
      }
    }
  }
}

// The kernel families and tuning variants (matvec.cuh set_matvec_variant) share one per-lane addition
// order, so each must reproduce the default's bits exactly: one segment, three segments (with bias and
// residual), SwiGLU; 1, 3 and 16 columns.
TEST_CASE("matvec kernel families and tuning variants are bit-identical", "[matvec]") {
  struct variant_guard {
    ~variant_guard() { set_matvec_variant(""); }
  } guard;
  std::vector<const char*> variants = {"legacy", "staged", "s2", "s3", "s6", "s4r1", "s4r2", "legacy,r1u4", "legacy,r2u2",
                                      "staged,nopf,nopdl", "legacy,pf", "legacy,pfhead", "legacy@q6_k,staged@f16,staged@q8_0",
                                      "stream", "str1", "str2", "sts2", "sts3", "sts6", "str1,sts2", "str1,sts8", "str2,sts8",
                                      "str1,sts6", "stream@q4_k,stream@q6_k,legacy@q8_0", "legacy,late", "legacy,r1u4,late",
                                      "fanout", "fanout,ft1", "fanout,fb2", "fanout,fb7", "fanout,fb64", "fanout,ft1,fb64",
                                      "fs1", "fanout@q4_k,stream@q6_k,fanout@f16", "fanout,fu2", "fanout,fu4", "fanout,ft1,fu2",
                                      "fanout,ft1,fu4,fb5", "fanout,ft4", "fanout,ft4,fb12,ftrim", "fanout,ftrim", "fanout,fwide",
                                      "fanout,ft2,fwide", "stream@q4_k,stream@q6_k", "fmma", "fanout,fmma,fb48", "fanout,fmma,fb16,nopdl", "fmma,fb48,fsb32",
                                      "fanout,fsb2,fsr1", "fanout,fsb12,fsr4", "fsb4", "nowef", "fanout,fwef,fb7,ft2", "fanout,nowef,ft4,fb12",
                                      "nonarrow", "fanout,nonarrow,fb12", "nonarrow,fsb8", "fb12", "fsb8", "fgt2", "fg3,fgt1",
                                      "fg12,fgt4", "fanout,fg2", "ft2,fgt2,fg8", "noprebias"};
  if (reduced_run()) variants = {"legacy", "legacy,late", "staged", "s6", "stream", "str1,sts8", "fanout", "fanout,ft1,fb7", "fanout,fu4", "fanout,ft4,ftrim", "fanout,ft2,fwide", "fmma", "fmma,fb48", "fsb4", "nowef", "nonarrow", "fgt2"};
  std::uint64_t seed = 5000;
  for (const ggml_type type : k_types) {
    INFO("type " << worker::model::type_name(type));
    const bool kq = type == ggml_type::q4_k || type == ggml_type::q5_k || type == ggml_type::q6_k;
    const std::size_t cols = kq ? 2816 : 1056;  // unit counts that leave some lanes a shorter tail
    const std::size_t rows[3] = {261, 40, 37};
    std::vector<uploaded_matrix> dms;
    for (int s = 0; s < 3; ++s) dms.push_back(upload_matrix(type, rows[s], cols, random_blocks(type, rows[s], cols, ++seed)));
    const auto x = random_normal(cols * 16, ++seed);
    activations act = make_activations(x, cols, 16);
    const auto y0 = random_normal(rows[0] * 16, ++seed);
    const auto bias = random_normal(rows[0], ++seed);
    device_buffer<float> b(bias);
    std::vector<device_buffer<float>> ys;
    for (int s = 0; s < 3; ++s) ys.emplace_back(rows[s] * 16);
    device_buffer<float> ysw(rows[0] * 16);
    device_buffer<float> yone(rows[0] * 16);

    // All outputs of one configuration, concatenated.
    auto run = [&](const char* variant, std::uint32_t ncols) {
      set_matvec_variant(variant);
      matvec_x xv = act.x;
      xv.ncols = ncols;
      ys[0].upload(y0);
      matvec_out outs[3];
      for (int s = 0; s < 3; ++s)
        outs[s] = {dms[s].m, s == 0 ? b.get() : nullptr, ys[s].get(), static_cast<std::uint32_t>(rows[s]), s == 0};
      matvec(std::span(outs, 3), xv, nullptr);
      matvec_swiglu(dms[0].m, dms[0].m, xv, ysw.get(), static_cast<std::uint32_t>(rows[0]), nullptr);
      matvec_out one{dms[0].m, nullptr, yone.get(), static_cast<std::uint32_t>(rows[0]), false};  // one segment
      matvec(std::span(&one, 1), xv, nullptr);
      std::vector<float> all;
      for (int s = 0; s < 3; ++s) {
        const auto v = ys[s].download();
        all.insert(all.end(), v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rows[s] * ncols));
      }
      for (device_buffer<float>* buf : {&ysw, &yone}) {
        const auto v = buf->download();
        all.insert(all.end(), v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rows[0] * ncols));
      }
      return all;
    };
    for (const std::uint32_t ncols : {1u, 3u, 16u}) {
      const auto want = run("", ncols);
      for (const char* v : variants) {
        INFO("variant " << v << " columns " << ncols);
        const auto got = run(v, ncols);
        REQUIRE(got.size() == want.size());
        CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
      }
    }
  }
}

// Long rows (K ≥ 8192, the FFN down projection) have block shapes of their own in the fan-out kernel
// (fdN rows per block, fdtN / fduN task shapes): each must give the default's bits at one column,
// including blocks that end past the last row.
TEST_CASE("matvec long-row block shapes are bit-identical", "[matvec]") {
  struct variant_guard {
    ~variant_guard() { set_matvec_variant(""); }
  } guard;
  const char* variants[] = {"stream", "fd4", "fd8,fdt2", "fd28", "fd12,nowef", "nowef", "fanout,fd16,fdt1", "fd4,fdu2"};
  std::uint64_t seed = 9000;
  for (const ggml_type type : k_types) {
    INFO("type " << worker::model::type_name(type));
    one_column_case c(type, 61, 8448, seed);  // 33 super-blocks: K ≥ 8192
    const auto want = c.run("");
    for (const char* v : variants) {
      INFO("variant " << v);
      const auto got = c.run(v);
      REQUIRE(got.size() == want.size());
      CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
    }
  }
}

// The hionly probe (single-level activations) must compute the same dot products to within the
// precision of one int8 level, and must differ from the two-level result (else it measures nothing).
TEST_CASE("matvec hionly probe: single-level activations stay close to the two-level result", "[matvec]") {
  struct variant_guard {
    ~variant_guard() { set_matvec_variant(""); }
  } guard;
  std::uint64_t seed = 9500;
  for (const ggml_type type : {ggml_type::q4_k, ggml_type::q6_k, ggml_type::q8_0})
  for (const std::size_t cols : {std::size_t{3584}, std::size_t{8448}}) {
    INFO("type " << worker::model::type_name(type) << " cols " << cols);
    one_column_case c(type, 256, cols, seed);
    const auto two = c.run(""), one = c.run("hionly");
    double diff = 0, norm = 0;
    for (std::size_t r = 0; r < c.rows; ++r) {
      diff += (one[r] - two[r]) * static_cast<double>(one[r] - two[r]);
      norm += two[r] * static_cast<double>(two[r]);
    }
    CHECK(diff > 0.0);
    CHECK(std::sqrt(diff / norm) < 2e-2);  // one level: |error| ≤ max|x| / 254 per activation
  }
}

// One-column Q4_K / Q6_K launches with the activations in the superblock-minor layout (the standard
// layout's bytes and ds permuted on the host) give the standard layout's bits: plain, several segments,
// SwiGLU (narrow Q4_K blocks), long rows; other weight types, several columns and tunings that do not
// read the layout are refused with a typed error.
TEST_CASE("matvec with superblock-minor activations gives the standard layout's bits", "[matvec]") {
  struct variant_guard {
    ~variant_guard() { set_matvec_variant(""); }
  } guard;
  set_matvec_variant("");
  std::uint64_t seed = 9700;
  // The standard activations of `c`, permuted into new buffers; x.sb_minor set.
  struct permuted {
    device_buffer<std::int8_t> q8, q8_lo;
    device_buffer<float4> ds;
    matvec_x x;
  };
  auto permute = [](const activations& a, std::uint32_t k) {
    const std::vector<std::int8_t> q = a.q8.download(), qlo = a.q8_lo.download();
    const std::vector<float4> ds = a.ds.download();
    std::vector<std::int8_t> pq(q.size()), pqlo(qlo.size());
    std::vector<float4> pds(ds.size());
    const std::uint32_t nsb = k / 256;
    for (std::uint32_t e = 0; e < k; ++e) {
      pq[sb_minor_byte(e, nsb)] = q[e];
      pqlo[sb_minor_byte(e, nsb)] = qlo[e];
    }
    for (std::uint32_t j = 0; j < k / 32; ++j) pds[sb_minor_block(j, nsb)] = ds[j];
    permuted p{device_buffer<std::int8_t>(pq), device_buffer<std::int8_t>(pqlo), device_buffer<float4>(pds), a.x};
    p.x.q8 = p.q8.get();
    p.x.q8_lo = p.q8_lo.get();
    p.x.ds = p.ds.get();
    p.x.sb_minor = true;
    return p;
  };
  for (const ggml_type type : {ggml_type::q4_k, ggml_type::q6_k})
  for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{61, 3584}, {300, 8448}, {4, 512}}) {
    INFO("type " << worker::model::type_name(type) << " rows " << rows << " cols " << cols);
    one_column_case c(type, rows, cols, seed);
    const auto want = c.run("");
    const permuted p = permute(c.act, static_cast<std::uint32_t>(cols));
    matvec_out out{c.dm.m, nullptr, c.y.get(), static_cast<std::uint32_t>(rows), false};
    matvec(std::span(&out, 1), p.x, nullptr);
    const auto got = c.y.download();
    CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
    // Two segments in one launch (Q and K) read the same activations.
    one_column_case c2(type, 37, cols, seed);
    device_buffer<float> y2(37);
    const matvec_out two[2] = {{c.dm.m, nullptr, c.y.get(), static_cast<std::uint32_t>(rows), false},
                               {c2.dm.m, nullptr, y2.get(), 37, false}};
    matvec(std::span(two, 2), c.act.x, nullptr);
    const auto want_a = c.y.download(), want_b = y2.download();
    matvec(std::span(two, 2), p.x, nullptr);
    CHECK(std::memcmp(c.y.download().data(), want_a.data(), want_a.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(y2.download().data(), want_b.data(), want_b.size() * sizeof(float)) == 0);
    // Tunings that do not read the layout refuse it; the default one takes it again afterwards.
    for (const char* v : {"legacy", "fmma", "ft2", "hionly", "nowef"}) {
      set_matvec_variant(v);
      CHECK_THROWS_AS(matvec(std::span(&out, 1), p.x, nullptr), gpu_error);
    }
    set_matvec_variant("");
  }
  {
    INFO("SwiGLU, Q4_K gate and up");
    const std::size_t ff = 96, d = 3584;
    one_column_case gate(ggml_type::q4_k, ff, d, seed), up(ggml_type::q4_k, ff, d, seed);
    device_buffer<float> y(ff);
    matvec_swiglu(gate.dm.m, up.dm.m, gate.act.x, y.get(), static_cast<std::uint32_t>(ff), nullptr);
    const auto want = y.download();
    const permuted p = permute(gate.act, static_cast<std::uint32_t>(d));
    matvec_swiglu(gate.dm.m, up.dm.m, p.x, y.get(), static_cast<std::uint32_t>(ff), nullptr);
    CHECK(std::memcmp(y.download().data(), want.data(), want.size() * sizeof(float)) == 0);
  }
  {
    INFO("refused: Q8_0 weights, two columns");
    one_column_case c(ggml_type::q8_0, 8, 512, seed);
    matvec_x x = c.act.x;
    x.sb_minor = true;
    matvec_out out{c.dm.m, nullptr, c.y.get(), 8, false};
    CHECK_THROWS_AS(matvec(std::span(&out, 1), x, nullptr), gpu_error);
    one_column_case k(ggml_type::q4_k, 8, 512, seed);
    activations two_cols = make_activations(random_normal(1024, ++seed), 512, 2);
    two_cols.x.sb_minor = true;
    device_buffer<float> y(16);
    matvec_out o2{k.dm.m, nullptr, y.get(), 8, false};
    CHECK_THROWS_AS(matvec(std::span(&o2, 1), two_cols.x, nullptr), gpu_error);
  }
}

TEST_CASE("matvec rejects unsupported shapes with a typed error", "[matvec]") {
  const auto raw = random_blocks(ggml_type::q8_0, 4, 64, 1);
  uploaded_matrix dm = upload_matrix(ggml_type::q8_0, 4, 64, raw);
  device_buffer<float> y(4 * 17);
  matvec_x x{};
  x.ncols = 17;
  const matvec_out out{dm.m, nullptr, y.get(), 4, false};
  try {
    matvec(std::span(&out, 1), x, nullptr);
    FAIL("no error");
  } catch (const gpu_error& e) {
    CHECK(e.code() == gpu_error_code::invalid_argument);
  }
}

// Diagnostics, not run by default (tag [.trace]; gpu_matvec_test "[.trace]"): where a fan-out block's
// lifetime goes on the 7B FFN shapes — Q4_K gate + up (2 × 18944 × 3584, SwiGLU) and Q6_K down
// (3584 × 18944) — from the per-block records of set_matvec_trace, printed as statistics. It checks
// only that every block wrote its record; the numbers are for docs/performance.md.
TEST_CASE("fan-out block timelines on the 7B FFN shapes", "[.trace]") {
  struct trace_guard {
    ~trace_guard() {
      set_matvec_variant("");
      set_matvec_trace(nullptr);
    }
  } guard;
  auto quantiles = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    auto at = [&](double f) { return v[static_cast<std::size_t>(f * static_cast<double>(v.size() - 1))]; };
    double sum = 0;
    for (const double d : v) sum += d;
    char buf[160];
    std::snprintf(buf, sizeof buf, "mean %7.0f  p10 %7.0f  p50 %7.0f  p90 %7.0f", sum / static_cast<double>(v.size()),
                  at(0.1), at(0.5), at(0.9));
    return std::string(buf);
  };
  auto timed_ms = [](const std::function<void()>& launch) { return mean_launch_ms(launch, 10); };
  // The traced launch runs alone, after a 512 MB write that evicts its weights from L2 (as the other
  // matvecs of a decode step do) and with nothing before it to wait for.
  device_buffer<std::uint8_t> flush(std::size_t{512} << 20);
  auto report = [&](const char* name, const std::function<void()>& launch, double bytes, const char* variant = "") {
    constexpr std::size_t k_max_blocks = 1 << 16;
    device_buffer<fan_trace_record> rec(k_max_blocks);
    set_matvec_variant(variant);
    const double plain_ms = timed_ms(launch);
    set_matvec_variant(std::string("ftrace,") + variant);
    const double traced_ms = timed_ms(launch);
    WORKER_CUDA_CHECK(cudaMemset(rec.get(), 0, k_max_blocks * sizeof(fan_trace_record)));
    WORKER_CUDA_CHECK(cudaMemset(flush.get(), 1, flush.size()));
    WORKER_CUDA_CHECK(cudaDeviceSynchronize());
    set_matvec_trace(rec.get());
    launch();
    WORKER_CUDA_CHECK(cudaDeviceSynchronize());
    set_matvec_trace(nullptr);
    set_matvec_variant("");
    std::vector<fan_trace_record> all = rec.download();
    std::vector<fan_trace_record> r;
    for (const fan_trace_record& x : all)
      if (x.start_ns != 0) r.push_back(x);
    REQUIRE(!r.empty());
    std::vector<double> life, pdl, landed, dots, barrier, phase2;
    std::uint64_t first = ~std::uint64_t{0}, last = 0;
    std::uint32_t sms = 0;
    double busy = 0;
    for (const fan_trace_record& x : r) {
      life.push_back(static_cast<double>(x.end_ns - x.start_ns));
      pdl.push_back(x.pdl_cycles);
      landed.push_back(x.landed_cycles);
      dots.push_back(x.dots_cycles);
      barrier.push_back(x.barrier_cycles);
      phase2.push_back(x.phase2_cycles);
      first = std::min<std::uint64_t>(first, x.start_ns);
      last = std::max<std::uint64_t>(last, x.end_ns);
      sms = std::max(sms, x.smid + 1);
      busy += static_cast<double>(x.end_ns - x.start_ns);
    }
    const double span = static_cast<double>(last - first);
    std::printf("%s%s%s: %zu blocks on %u SMs; back to back %.2f us a launch untraced (%.0f GB/s), %.2f traced; "
                "the traced launch alone, weights not in L2: %.2f us, %.2f blocks resident per SM on average\n",
                name, *variant ? ", " : "", variant, r.size(), sms, 1e3 * plain_ms, bytes / (1e6 * plain_ms), 1e3 * traced_ms, span / 1e3,
                busy / (span * sms));
    std::printf("  block lifetime (ns)         %s\n", quantiles(life).c_str());
    std::printf("  start -> past PDL wait (clk) %s\n", quantiles(pdl).c_str());
    std::printf("  -> thread 0's pieces (clk)  %s\n", quantiles(landed).c_str());
    std::printf("  -> thread 0's dots (clk)    %s\n", quantiles(dots).c_str());
    std::printf("  -> past the barrier (clk)   %s\n", quantiles(barrier).c_str());
    std::printf("  -> warp 0's phase 2 (clk)   %s\n", quantiles(phase2).c_str());
    std::fflush(stdout);
  };

  const std::size_t d = 3584, ff = 18944;
  const auto x = random_normal(ff, 77);
  activations ax = make_activations(std::vector<float>(x.begin(), x.begin() + d), d, 1);
  activations af = make_activations(x, ff, 1);
  {
    const uploaded_matrix gate = upload_matrix(ggml_type::q4_k, ff, d, random_blocks(ggml_type::q4_k, ff, d, 78));
    const uploaded_matrix up = upload_matrix(ggml_type::q4_k, ff, d, random_blocks(ggml_type::q4_k, ff, d, 79));
    device_buffer<float> y(ff);
    for (const char* variant : {"", "nonarrow"})
      report("Q4_K gate + up 2 x 18944 x 3584",
             [&] { matvec_swiglu(gate.m, up.m, ax.x, y.get(), static_cast<std::uint32_t>(ff), nullptr); },
             2.0 * static_cast<double>(ff) * d / 256 * 144, variant);
  }
  {
    const uploaded_matrix down = upload_matrix(ggml_type::q6_k, d, ff, random_blocks(ggml_type::q6_k, d, ff, 80));
    device_buffer<float> y(d);
    matvec_out out{down.m, nullptr, y.get(), static_cast<std::uint32_t>(d), false};
    report("Q6_K down 3584 x 18944", [&] { matvec(std::span(&out, 1), af.x, nullptr); },
           static_cast<double>(d) * ff / 256 * 210);
  }
}

// What a launch of the FFN shapes costs beyond its bytes (diagnostics, run by hand:
// gpu_matvec_test "[.launchcost]"). The same kernel on k = 1, 2, 4, 8 times the rows of one layer's
// gate + up and down projection (views of one matrix: the first rows), timed back to back; for
// T(k) = fixed + k·per_layer, fixed = 2·T(k) − T(2k). With PDL (the default) a launch's first
// weights load while the previous launch finishes; nopdl serializes them.
TEST_CASE("fan-out launch cost against launch length on the 7B FFN shapes", "[.launchcost]") {
  struct variant_guard {
    ~variant_guard() { set_matvec_variant(""); }
  } guard;
  auto timed_us = [](const std::function<void()>& launch) { return 1e3 * mean_launch_ms(launch, 20); };
  constexpr int k_max = 8;
  const std::size_t d = 3584, ff = 18944;
  const auto x = random_normal(ff, 91);
  activations ax = make_activations(std::vector<float>(x.begin(), x.begin() + d), d, 1);
  activations af = make_activations(x, ff, 1);
  // One row of results: T(k) for k = 1, 2, 4, 8 and the fixed cost of each doubling.
  auto table = [&](const char* name, double layer_bytes, const std::function<void(int)>& launch_k) {
    for (const char* variant : {"", "nopdl"}) {
      set_matvec_variant(variant);
      double t[4];
      for (int i = 0; i < 4; ++i) t[i] = timed_us([&] { launch_k(1 << i); });
      std::printf("%-34s %-6s", name, *variant ? variant : "pdl");
      for (int i = 0; i < 4; ++i)
        std::printf("  k=%d %7.2f us %5.0f GB/s", 1 << i, t[i], (1 << i) * layer_bytes / (1e3 * t[i]));
      std::printf("  | fixed 2T(k)-T(2k): %.2f %.2f %.2f us\n", 2 * t[0] - t[1], 2 * t[1] - t[2], 2 * t[2] - t[3]);
      std::fflush(stdout);
    }
    set_matvec_variant("");
  };
  {
    // gate and up share one random matrix (timing only).
    const uploaded_matrix w = upload_matrix(ggml_type::q4_k, k_max * ff, d, random_blocks(ggml_type::q4_k, k_max * ff, d, 92));
    device_buffer<float> y(k_max * ff);
    table("Q4_K gate + up 2 x (k x 18944) x 3584", 2.0 * static_cast<double>(ff) * d / 256 * 144, [&](int k) {
      device_matrix m = w.m;
      m.rows = static_cast<std::uint32_t>(k * ff);
      matvec_swiglu(m, m, ax.x, y.get(), m.rows, nullptr);
    });
  }
  for (const ggml_type type : {ggml_type::q6_k, ggml_type::q4_k}) {
    const uploaded_matrix w = upload_matrix(type, k_max * d, ff, random_blocks(type, k_max * d, ff, 93));
    device_buffer<float> y(k_max * d);
    const double bytes = static_cast<double>(d) * ff / 256 * (type == ggml_type::q6_k ? 210 : 144);
    table(type == ggml_type::q6_k ? "Q6_K down (k x 3584) x 18944" : "Q4_K down (k x 3584) x 18944", bytes, [&](int k) {
      device_matrix m = w.m;
      m.rows = static_cast<std::uint32_t>(k * d);
      matvec_out out{m, nullptr, y.get(), m.rows, false};
      matvec(std::span(&out, 1), af.x, nullptr);
    });
  }
}
