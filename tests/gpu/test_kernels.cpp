// The non-matvec kernels against the CPU reference ops (cpu/, model/quant.hpp), over shape sweeps that
// include the Qwen2.5-7B shapes (d_model 3584, 28/4 heads of 128, FFN 18944, vocab 152064):
// - embedding gather and fp16 dequantization tiles: every type, exact against model::dequantize_row
//   (gather: bit-identical fp32, also with ids redirected to a device array; tile: the CPU value rounded
//   to fp16, bit-identical);
// - RMSNorm (+ residual, fp32/fp16/two-level int8 outputs): fp32 output within 2 ulp of cpu::rmsnorm
//   (only the double sum's order differs), int8 levels within half a step of it; a row's bits do not
//   depend on the number of rows or on the block split;
// - RoPE + KV store: Q bit-identical to cpu::rope_heads with the same angle table, K/V equal to the CPU
//   values rounded to fp16;
// - attention (split-KV, GQA, several splits): |Δ| ≤ 1e-4·max|v| + 1e-5 against cpu::attention_head run
//   on the same fp16 K/V (fp32 vs fp32 with a different summation order);
// - prefill GEMM (cuBLAS on dequantized fp16 tiles): |Δ| ≤ 2e-3·Σ|w·x| against fp64 on the fp16-rounded
//   operands (fp16 tiles of Q4_K etc. round the weights, which the reference reproduces exactly).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <tuple>
#include <vector>

#include "cpu/attention.hpp"
#include "cpu/norm.hpp"
#include "cpu/rope.hpp"
#include "gpu/attention.cuh"
#include "gpu/block_trace.hpp"
#include "gpu/dequant.cuh"
#include "gpu/gemm.cuh"
#include "gpu/gpu_error.hpp"
#include "gpu/matvec.cuh"
#include "gpu/norm.cuh"
#include "gpu/rope.cuh"
#include "tests/gpu/gpu_test_support.hpp"

using namespace worker;
using namespace worker::gpu;
using namespace worker::gpu::test;
using model::ggml_type;

namespace {

const ggml_type k_types[] = {ggml_type::q4_k, ggml_type::q5_k, ggml_type::q6_k, ggml_type::q8_0, ggml_type::q4_0,
                             ggml_type::q5_0, ggml_type::f16,  ggml_type::bf16, ggml_type::f32};

float half_round(float v) { return model::fp16_to_fp32(model::fp32_to_fp16(v)); }
__half to_half(std::uint16_t bits) {
  __half_raw r;
  r.x = bits;
  return __half(r);
}
float half_value(const __half& h) { return model::fp16_to_fp32(__half_raw(h).x); }

// The attention arguments both attention tests set alike: nq queries (q rows of n_head·hd), their
// sequences and positions, one layer's KV cache, the split and its scratch, fp32 output rows of n_head·hd.
struct attention_case {
  std::uint32_t n_head, n_head_kv, hd, layer, nq, split, splits;
};
attention_args attention_inputs(const attention_case& c, const float* q, const kv_seq_desc* seqs,
                                const std::int32_t* query_seq, const std::int32_t* query_pos, float* partial_o,
                                float2* partial_ml, float* out) {
  attention_args a;
  a.q = q;
  a.ldq = c.n_head * c.hd;
  a.seqs = seqs;
  a.query_seq = query_seq;
  a.query_pos = query_pos;
  a.layer = c.layer;
  a.nq = c.nq;
  a.n_head = c.n_head;
  a.n_head_kv = c.n_head_kv;
  a.head_dim = c.hd;
  a.scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
  a.split = c.split;
  a.max_splits = c.splits;
  a.partial_o = partial_o;
  a.partial_ml = partial_ml;
  a.out = out;
  a.ldo = c.n_head * c.hd;
  return a;
}

}  // namespace

TEST_CASE("embedding gather and fp16 dequantization tiles equal the CPU dequantizer for every type", "[kernels]") {
  std::uint64_t seed = 1;
  for (const ggml_type type : k_types) {
    for (const auto& [rows, cols] : {std::pair<std::size_t, std::size_t>{64, 256}, {300, 3584}}) {
      INFO("type " << model::type_name(type) << " " << rows << "x" << cols);
      const auto raw = random_blocks(type, rows, cols, ++seed);
      const auto ref = dequantize_all(type, raw, rows, cols);
      uploaded_matrix m = upload_matrix(type, rows, cols, raw);
      const std::vector<std::int32_t> ids = {0, static_cast<std::int32_t>(rows - 1), 7, 7, 42, -1,
                                             static_cast<std::int32_t>(rows)};
      device_buffer<std::int32_t> dids(ids);
      device_buffer<float> out(ids.size() * cols);
      gather_rows_f32(m.m, dids.get(), static_cast<std::uint32_t>(ids.size()), out.get(), static_cast<std::uint32_t>(cols), nullptr);
      const auto got = out.download();
      for (std::size_t t = 0; t < ids.size(); ++t) {
        for (std::size_t k = 0; k < cols; ++k) {
          const float g = got[t * cols + k];
          if (ids[t] < 0 || static_cast<std::size_t>(ids[t]) >= rows) {
            REQUIRE(std::isnan(g));  // out-of-range ids never read outside the table
          } else {
            REQUIRE(g == ref[static_cast<std::size_t>(ids[t]) * cols + k]);
          }
        }
      }
      // Redirected rows (the previous decode step's sampled ids left on the device): row t reads
      // from_ids[from[t]] where from[t] >= 0, ids[t] elsewhere.
      const std::vector<std::int32_t> from = {2, -1, 0, -1, 1, 3, -1};
      const std::vector<std::int32_t> from_ids = {5, static_cast<std::int32_t>(rows - 2), 11, -7};
      device_buffer<std::int32_t> dfrom(from), dfrom_ids(from_ids);
      gather_rows_f32(m.m, dids.get(), static_cast<std::uint32_t>(ids.size()), out.get(), static_cast<std::uint32_t>(cols),
                      nullptr, dfrom.get(), dfrom_ids.get());
      const auto redirected = out.download();
      for (std::size_t t = 0; t < ids.size(); ++t) {
        const std::int32_t id = from[t] >= 0 ? from_ids[static_cast<std::size_t>(from[t])] : ids[t];
        for (std::size_t k = 0; k < cols; ++k) {
          const float g = redirected[t * cols + k];
          if (id < 0 || static_cast<std::size_t>(id) >= rows) {
            REQUIRE(std::isnan(g));
          } else {
            REQUIRE(g == ref[static_cast<std::size_t>(id) * cols + k]);
          }
        }
      }
      device_buffer<__half> tile(rows * cols);
      dequantize_rows_f16(m.m, 1, static_cast<std::uint32_t>(rows - 1), tile.get(), nullptr);
      const auto th = tile.download();
      for (std::size_t i = 0; i < (rows - 1) * cols; ++i) {
        REQUIRE(half_value(th[i]) == half_round(ref[cols + i]));
      }
    }
  }
}

// With a residual (delta) a row runs in one block; without one, up to 16 rows (decode) are cut into
// slices of 128 outputs, one block each, every block summing the whole row (gpu/norm.cu): both splits,
// and a row's bits must not depend on the split or on the number of rows (17 rows: one block per row).
namespace {

// RMSNorm of `rows` rows of dim floats (h, and delta when given), every output dense (stride dim); f16
// only when given.
rmsnorm_args dense_norm_args(float* h, float* delta, const float* w, std::uint32_t dim, std::uint32_t rows, float* f32,
                             __half* f16, std::int8_t* q8, std::int8_t* q8lo, float4* ds) {
  rmsnorm_args a;
  a.h = h;
  a.ldh = dim;
  if (delta) {
    a.delta = delta;
    a.ld_delta = dim;
  }
  a.weight = w;
  a.dim = dim;
  a.n = rows;
  a.eps = 1e-6f;
  a.out_f32 = f32;
  a.ld_f32 = dim;
  a.out_f16 = f16;
  a.ld_f16 = f16 ? dim : 0;
  a.out_q8 = q8;
  a.out_q8_lo = q8lo;
  a.ld_q8 = dim;
  a.out_ds = ds;
  a.ld_ds = dim / 32;
  return a;
}

}  // namespace

TEST_CASE("RMSNorm with residual matches cpu::rmsnorm and writes fp16 and int8 copies", "[kernels]") {
  for (const bool with_delta : {true, false}) {
    for (const std::uint32_t dim : {32u, 160u, 256u, 896u, 1440u, 3584u, 8192u}) {
      for (const std::uint32_t n : {1u, 5u, 16u, 17u}) {
        INFO("dim " << dim << " rows " << n << (with_delta ? " with residual" : " without residual"));
        const auto h0 = random_normal(std::size_t{n} * dim, dim + n, 2.0f);
        const auto delta = random_normal(std::size_t{n} * dim, dim * 3 + n);
        auto w = random_normal(dim, 5);
        for (auto& x : w) x = 1.0f + 0.2f * x;
        struct outputs {
          std::vector<float> h, f32;
          std::vector<__half> f16;
          std::vector<std::int8_t> q8, q8lo;
          std::vector<float4> ds;
        };
        // Runs rows [r0, r0 + rows) of the inputs in one launch.
        auto run = [&](std::uint32_t r0, std::uint32_t rows) {
          const std::size_t e0 = std::size_t{r0} * dim, ne = std::size_t{rows} * dim;
          device_buffer<float> dh(std::vector<float>(h0.begin() + e0, h0.begin() + e0 + ne)),
              dd(std::vector<float>(delta.begin() + e0, delta.begin() + e0 + ne)), dw(w), f32(ne);
          device_buffer<__half> f16(ne);
          device_buffer<std::int8_t> q8(ne), q8lo(ne);
          device_buffer<float4> ds(ne / 32);
          rmsnorm_fused(dense_norm_args(dh.get(), with_delta ? dd.get() : nullptr, dw.get(), dim, rows, f32.get(), f16.get(),
                                        q8.get(), q8lo.get(), ds.get()),
                        nullptr);
          return outputs{dh.download(), f32.download(), f16.download(), q8.download(), q8lo.download(), ds.download()};
        };
        const outputs g = run(0, n);
        std::vector<float> hs(h0.size()), ref(h0.size());
        for (std::size_t i = 0; i < h0.size(); ++i) hs[i] = with_delta ? h0[i] + delta[i] : h0[i];
        cpu::rmsnorm_rows({dim, 1e-6f}, hs.data(), w.data(), ref.data(), n, dim);
        for (std::size_t i = 0; i < h0.size(); ++i) {
          REQUIRE(g.h[i] == hs[i]);
          REQUIRE(std::fabs(g.f32[i] - ref[i]) <= 2.4e-7f * std::fabs(ref[i]));
          REQUIRE(half_value(g.f16[i]) == half_round(g.f32[i]));
          const float4 d = g.ds[i / 32];
          REQUIRE(std::fabs(d.x * g.q8[i] - g.f32[i]) <= 0.5001f * d.x + 1e-12f);
          // Two levels: within half a low-level step of the fp32 value.
          REQUIRE(std::fabs(d.x * g.q8[i] + d.z * g.q8lo[i] - g.f32[i]) <= 0.5001f * d.z + 1e-6f * std::fabs(g.f32[i]) + 1e-12f);
        }
        if (n > 1) {
          // The last row alone (without a residual: sliced) gives the bits it got among n rows.
          const outputs one = run(n - 1, 1);
          const std::size_t e0 = std::size_t{n - 1} * dim;
          CHECK(std::memcmp(one.f32.data(), g.f32.data() + e0, dim * sizeof(float)) == 0);
          CHECK(std::memcmp(one.q8.data(), g.q8.data() + e0, dim) == 0);
          CHECK(std::memcmp(one.q8lo.data(), g.q8lo.data() + e0, dim) == 0);
          CHECK(std::memcmp(one.ds.data(), g.ds.data() + e0 / 32, dim / 32 * sizeof(float4)) == 0);
        }
      }
    }
  }
}

// Where an RMSNorm lets its programmatic dependent launch (at its start, after its wait, or once its
// row is summed: rmsnorm_args::trigger_after_sum) changes no value: back-to-back launches, each a
// programmatic dependent of the one before, give the bits of plain launches.
TEST_CASE("RMSNorm trigger points give the same bits", "[kernels]") {
  const std::uint32_t dim = 3584;
  const auto h0 = random_normal(dim, 91, 2.0f);
  auto w = random_normal(dim, 92);
  for (auto& x : w) x = 1.0f + 0.2f * x;
  auto run = [&](bool pdl, bool early, bool mid) {
    device_buffer<float> dh(h0), dw(w), f32(dim);
    device_buffer<__half> f16(dim);
    device_buffer<std::int8_t> q8(dim), q8lo(dim);
    device_buffer<float4> ds(dim / 32);
    rmsnorm_args a = dense_norm_args(dh.get(), nullptr, dw.get(), dim, 1, f32.get(), f16.get(), q8.get(), q8lo.get(), ds.get());
    a.pdl = pdl;
    a.early_trigger = early;
    a.trigger_after_sum = mid;
    for (int k = 0; k < 3; ++k) rmsnorm_fused(a, nullptr);
    std::vector<float> out = f32.download();
    const auto hi = q8.download(), lo = q8lo.download();
    for (std::uint32_t i = 0; i < dim; ++i) out.push_back(static_cast<float>(hi[i]) + 1000.0f * static_cast<float>(lo[i]));
    return out;
  };
  const auto want = run(false, false, false);
  for (const auto& [early, mid] : {std::pair{true, false}, std::pair{false, true}, std::pair{false, false}}) {
    INFO("early " << early << " after the sum " << mid);
    const auto got = run(true, early, mid);
    CHECK(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)) == 0);
  }
}

// Block timelines (gpu/block_trace.hpp): a build without them says so when asked to record; a build
// with them (-DWORKER_ORCD_BLOCK_TRACE=ON) leaves one record per block of a traced kernel.
TEST_CASE("block timelines are refused without the trace build and complete with it", "[kernels]") {
  const std::uint32_t dim = 3584;
  device_buffer<float> dh(random_normal(dim, 93)), dw(random_normal(dim, 94)), f32(dim);
  const rmsnorm_args a = dense_norm_args(dh.get(), nullptr, dw.get(), dim, 1, f32.get(), nullptr, nullptr, nullptr, nullptr);
  if (!block_trace_compiled()) {
    CHECK_THROWS_AS(block_trace_start(1024), gpu_error);
    CHECK(block_trace_stop().empty());
    return;
  }
  block_trace_start(1024);
  rmsnorm_fused(a, nullptr);
  const auto records = block_trace_stop();
  REQUIRE(records.size() == dim / 128);  // sliced: one block per 128 outputs
  std::vector<bool> seen(records.size(), false);
  for (const block_trace_record& r : records) {
    CHECK(r.kernel == static_cast<std::uint16_t>(traced_kernel::rmsnorm));
    REQUIRE(r.block < records.size());
    seen[r.block] = true;
    CHECK(r.wait_ns <= r.end_ns);
    CHECK(r.grid == records[0].grid);
  }
  CHECK(std::all_of(seen.begin(), seen.end(), [](bool b) { return b; }));
}

// The superblock-minor layout (matvec.cuh sb_minor_byte) holds the standard layout's bytes and ds,
// permuted: RMSNorm (sliced rows and, with a residual, whole rows), quantize_q8 and the attention (28
// heads of 128: 14 super-blocks, the Qwen2.5-7B output projection's input) write the same values.
TEST_CASE("RMSNorm, quantize_q8 and the attention write the superblock-minor layout as the standard one permuted", "[kernels]") {
  auto same_permuted = [](std::uint32_t k, const std::vector<std::int8_t>& q, const std::vector<std::int8_t>& qlo,
                          const std::vector<float4>& ds, const std::vector<std::int8_t>& pq,
                          const std::vector<std::int8_t>& pqlo, const std::vector<float4>& pds) {
    const std::uint32_t nsb = k / 256;
    std::size_t bad = 0;
    for (std::uint32_t e = 0; e < k; ++e) {
      bad += pq[sb_minor_byte(e, nsb)] != q[e] || pqlo[sb_minor_byte(e, nsb)] != qlo[e];
    }
    for (std::uint32_t j = 0; j < k / 32; ++j) bad += std::memcmp(&pds[sb_minor_block(j, nsb)], &ds[j], sizeof(float4)) != 0;
    return bad;
  };
  // run(sb_minor) → (q8, q8_lo, ds) of one writer: mismatches between its two layouts.
  auto permuted_mismatches = [&](std::uint32_t k, auto run) {
    const auto [q, qlo, ds] = run(false);
    const auto [pq, pqlo, pds] = run(true);
    return same_permuted(k, q, qlo, ds, pq, pqlo, pds);
  };
  for (const std::uint32_t dim : {256u, 3584u, 8192u}) {
    for (const bool with_delta : {false, true}) {
      INFO("RMSNorm dim " << dim << (with_delta ? " with residual" : ""));
      const auto h0 = random_normal(dim, dim + 7, 2.0f), delta = random_normal(dim, dim + 8), w = random_normal(dim, 9);
      auto run = [&](bool sb_minor) {
        device_buffer<float> dh(h0), dd(delta), dw(w), f32(dim);
        device_buffer<std::int8_t> q8(dim), q8lo(dim);
        device_buffer<float4> ds(dim / 32);
        rmsnorm_args a = dense_norm_args(dh.get(), with_delta ? dd.get() : nullptr, dw.get(), dim, 1, f32.get(), nullptr,
                                         q8.get(), q8lo.get(), ds.get());
        a.q8_sb_minor = sb_minor;
        rmsnorm_fused(a, nullptr);
        return std::tuple{q8.download(), q8lo.download(), ds.download()};
      };
      CHECK(permuted_mismatches(dim, run) == 0);
    }
  }
  for (const std::uint32_t k : {256u, 3584u, 18944u}) {
    INFO("quantize_q8 k " << k);
    const auto x = random_normal(k, k + 11);
    auto run = [&](bool sb_minor) {
      device_buffer<float> dx(x);
      device_buffer<std::int8_t> q8(k), q8lo(k);
      device_buffer<float4> ds(k / 32);
      quantize_q8(dx.get(), k, k, 1, q8.get(), q8lo.get(), k, ds.get(), k / 32, nullptr, false, false, sb_minor);
      return std::tuple{q8.download(), q8lo.download(), ds.download()};
    };
    CHECK(permuted_mismatches(k, run) == 0);
  }
  {
    INFO("attention, 28 / 4 heads of 128, 257 keys");
    const std::uint32_t nh = 28, nkv = 4, hd = 128, len = 257, qd = nh * hd, cap = len + 3;
    std::vector<__half> cache(kv_seq_elems({1, nkv, hd}, cap));
    const auto kv = random_normal(cache.size(), 31);
    for (std::size_t i = 0; i < cache.size(); ++i) cache[i] = to_half(model::fp32_to_fp16(kv[i]));
    const auto q = random_normal(qd, 33);
    device_buffer<__half> dc(cache);
    std::vector<kv_seq_desc> seqs(1);
    seqs[0].base = dc.get();
    seqs[0].capacity = static_cast<std::int32_t>(cap);
    device_buffer<kv_seq_desc> dseq(seqs);
    device_buffer<std::int32_t> dqs(std::vector<std::int32_t>{0}), dpos(std::vector<std::int32_t>{static_cast<std::int32_t>(len - 1)});
    device_buffer<float> dq(q);
    const std::uint32_t splits = attn_splits_for(cap, k_attn_split_decode);
    device_buffer<float> po(std::size_t{nh} * splits * hd), out(qd);
    device_buffer<float2> pml(std::size_t{nh} * splits);
    auto run = [&](bool sb_minor) {
      device_buffer<std::int8_t> q8(qd), q8lo(qd);
      device_buffer<float4> ds(qd / 32);
      attention_args a = attention_inputs({nh, nkv, hd, 0, 1, k_attn_split_decode, splits}, dq.get(), dseq.get(), dqs.get(),
                                          dpos.get(), po.get(), pml.get(), out.get());
      a.out_q8 = q8.get();
      a.out_q8_lo = q8lo.get();
      a.ld_q8 = qd;
      a.out_ds = ds.get();
      a.ld_ds = qd / 32;
      a.q8_sb_minor = sb_minor;
      attention(a, nullptr);
      return std::tuple{q8.download(), q8lo.download(), ds.download()};
    };
    CHECK(permuted_mismatches(qd, run) == 0);
  }
  // Rejected where the layout is not defined: several rows, or a dimension not a multiple of 256.
  device_buffer<float> dx(std::vector<float>(64 * 2, 1.0f));
  device_buffer<std::int8_t> q8(64 * 2), q8lo(64 * 2);
  device_buffer<float4> ds(4);
  CHECK_THROWS_AS(quantize_q8(dx.get(), 64, 64, 2, q8.get(), q8lo.get(), 64, ds.get(), 2, nullptr, false, false, true), gpu_error);
}

TEST_CASE("RoPE NEOX + KV store equals cpu::rope_heads and writes fp16 K/V at each token's position", "[kernels]") {
  struct cfg {
    std::uint32_t n_head, n_head_kv, hd, n;
  };
  for (const cfg c : {cfg{8, 2, 32, 3}, cfg{28, 4, 128, 5}, cfg{64, 8, 64, 2}}) {
    INFO("heads " << c.n_head << "/" << c.n_head_kv << " hd " << c.hd);
    cpu::rope_params rp;
    rp.n_dims = c.hd;
    rp.freq_base = 1e6f;
    const std::uint32_t positions = 5000;
    std::vector<float2> table(std::size_t{positions} * c.hd / 2);
    std::vector<float> cs(c.hd / 2), sn(c.hd / 2);
    for (std::uint32_t p = 0; p < positions; ++p) {
      cpu::rope_angles(rp, p, cs.data(), sn.data());
      for (std::uint32_t i = 0; i < c.hd / 2; ++i) table[std::size_t{p} * c.hd / 2 + i] = make_float2(cs[i], sn[i]);
    }
    const std::uint32_t qd = c.n_head * c.hd, kvd = c.n_head_kv * c.hd, cap = positions;
    const auto q = random_normal(std::size_t{c.n} * qd, 1), k = random_normal(std::size_t{c.n} * kvd, 2),
               v = random_normal(std::size_t{c.n} * kvd, 3), bq = random_normal(qd, 4), bk = random_normal(kvd, 5),
               bv = random_normal(kvd, 6);
    const std::vector<std::int32_t> pos = [&] {
      std::vector<std::int32_t> p;
      for (std::uint32_t t = 0; t < c.n; ++t) p.push_back(static_cast<std::int32_t>(t * 997 % positions));
      return p;
    }();
    const std::uint32_t layer = 1, n_layer = 2;
    device_buffer<__half> cache(kv_seq_elems({n_layer, c.n_head_kv, c.hd}, cap));
    std::vector<kv_seq_desc> seqs(1);
    seqs[0].base = cache.get();
    seqs[0].capacity = static_cast<std::int32_t>(cap);
    device_buffer<kv_seq_desc> dseq(seqs);
    device_buffer<std::int32_t> dtok(std::vector<std::int32_t>(c.n, 0)), dpos(pos);
    device_buffer<float> dq(q), dk(k), dv(v), dbq(bq), dbk(bk), dbv(bv);
    device_buffer<float2> dt(table);
    rope_kv_args a;
    a.q = dq.get();
    a.ldq = qd;
    a.k = dk.get();
    a.ldk = kvd;
    a.v = dv.get();
    a.ldv = kvd;
    a.q_bias = dbq.get();
    a.k_bias = dbk.get();
    a.v_bias = dbv.get();
    a.cos_sin = dt.get();
    a.table_positions = positions;
    a.seqs = dseq.get();
    a.token_seq = dtok.get();
    a.token_pos = dpos.get();
    a.layer = layer;
    a.n = c.n;
    a.n_head = c.n_head;
    a.n_head_kv = c.n_head_kv;
    a.head_dim = c.hd;
    a.n_rot = c.hd;
    rope_qk_store_kv(a, nullptr);
    const auto gq = dq.download();
    const auto gc = cache.download();
    for (std::uint32_t t = 0; t < c.n; ++t) {
      std::vector<float> rq(q.begin() + t * qd, q.begin() + (t + 1) * qd), rk(k.begin() + t * kvd, k.begin() + (t + 1) * kvd);
      for (std::uint32_t i = 0; i < qd; ++i) rq[i] += bq[i];
      for (std::uint32_t i = 0; i < kvd; ++i) rk[i] += bk[i];
      cpu::rope_heads(rp, pos[t], rq.data(), c.n_head, c.hd);
      cpu::rope_heads(rp, pos[t], rk.data(), c.n_head_kv, c.hd);
      for (std::uint32_t i = 0; i < qd; ++i) REQUIRE(gq[t * qd + i] == rq[i]);
      for (std::uint32_t g = 0; g < c.n_head_kv; ++g) {
        for (std::uint32_t d = 0; d < c.hd; ++d) {
          const std::size_t per_head = std::size_t{cap} * c.hd;
          const std::size_t kidx = ((std::size_t{layer} * 2 + 0) * c.n_head_kv + g) * per_head + std::size_t(pos[t]) * c.hd + d;
          const std::size_t vidx = ((std::size_t{layer} * 2 + 1) * c.n_head_kv + g) * per_head + std::size_t(pos[t]) * c.hd + d;
          REQUIRE(half_value(gc[kidx]) == half_round(rk[g * c.hd + d]));
          REQUIRE(half_value(gc[vidx]) == half_round(v[t * kvd + g * c.hd + d] + bv[g * c.hd + d]));
        }
      }
    }
  }
}

TEST_CASE("split-KV attention matches cpu::attention_head over GQA shapes and several splits", "[kernels]") {
  struct cfg {
    std::uint32_t n_head, n_head_kv, hd, len;
  };
  std::vector<cfg> cfgs = {{8, 2, 32, 1}, {8, 2, 32, 300}, {28, 4, 128, 1}, {28, 4, 128, 257}, {28, 4, 128, 2100}, {64, 8, 64, 700}};
  if (!reduced_run()) cfgs.push_back({28, 4, 128, 8192});
  for (const cfg c : cfgs) {
    INFO("heads " << c.n_head << "/" << c.n_head_kv << " hd " << c.hd << " keys " << c.len);
    const std::uint32_t kvd = c.n_head_kv * c.hd, qd = c.n_head * c.hd, cap = c.len + 3;
    // K/V in the fp16 cache; the CPU reference reads the same values as fp32.
    const auto kf = random_normal(std::size_t{c.len} * kvd, c.len), vf = random_normal(std::size_t{c.len} * kvd, c.len + 1);
    std::vector<float> kr(kf.size()), vr(vf.size());
    std::vector<__half> cache(kv_seq_elems({1, c.n_head_kv, c.hd}, cap));
    for (std::uint32_t p = 0; p < c.len; ++p)
      for (std::uint32_t g = 0; g < c.n_head_kv; ++g)
        for (std::uint32_t d = 0; d < c.hd; ++d) {
          const std::size_t i = std::size_t{p} * kvd + g * c.hd + d;
          kr[i] = half_round(kf[i]);
          vr[i] = half_round(vf[i]);
          cache[(std::size_t{0} * c.n_head_kv + g) * cap * c.hd + std::size_t{p} * c.hd + d] = to_half(model::fp32_to_fp16(kf[i]));
          cache[(std::size_t{1} * c.n_head_kv + g) * cap * c.hd + std::size_t{p} * c.hd + d] = to_half(model::fp32_to_fp16(vf[i]));
        }
    // Queries at the last position and at two earlier ones (causal: fewer keys).
    const std::vector<std::int32_t> pos = {static_cast<std::int32_t>(c.len - 1), static_cast<std::int32_t>(c.len / 2),
                                           0};
    const auto q = random_normal(pos.size() * qd, 17);
    device_buffer<__half> dc(cache);
    std::vector<kv_seq_desc> seqs(1);
    seqs[0].base = dc.get();
    seqs[0].capacity = static_cast<std::int32_t>(cap);
    device_buffer<kv_seq_desc> dseq(seqs);
    device_buffer<std::int32_t> dqs(std::vector<std::int32_t>(pos.size(), 0)), dpos(pos);
    device_buffer<float> dq(q);
    // The path's split (odd lengths: decode's, even: prefill's) and two more: 32 (one round of the split
    // kernel's work split) and 64 (two rounds).
    for (const std::uint32_t split : {c.len % 2 ? k_attn_split_decode : k_attn_split_prefill, 32u, 64u}) {
      INFO("split " << split);
      const std::uint32_t splits = attn_splits_for(cap, split);
      device_buffer<float> po(pos.size() * c.n_head * splits * c.hd), out(pos.size() * qd);
      device_buffer<float2> pml(pos.size() * c.n_head * splits);
      const attention_case ac{c.n_head, c.n_head_kv, c.hd, 0, static_cast<std::uint32_t>(pos.size()), split, splits};
      const attention_args a = attention_inputs(ac, dq.get(), dseq.get(), dqs.get(), dpos.get(), po.get(), pml.get(), out.get());
      attention(a, nullptr);
      const auto got = out.download();
      cpu::attention_params ap;
      ap.n_head = c.n_head;
      ap.n_head_kv = c.n_head_kv;
      ap.head_dim = c.hd;
      ap.scale = a.scale;
      const cpu::kv_view kv{kr.data(), vr.data(), kvd};
      std::vector<float> scratch(c.len + 1), ref(qd);
      for (std::size_t i = 0; i < pos.size(); ++i) {
        cpu::attention_row(ap, &q[i * qd], pos[i], kv, ref.data(), scratch.data());
        for (std::uint32_t j = 0; j < qd; ++j) REQUIRE(std::fabs(got[i * qd + j] - ref[j]) <= 1e-4f * 4.0f + 1e-5f);
      }
    }
  }
}

// Decode fuses RoPE + the KV store into the attention kernel (attention_args::k_new) and the merge into
// its last split block (merge_counters); both must give the bits of the separate launches:
// rope_qk_store_kv, then attention on the rotated queries with its merge kernel — also with the
// attention launched as a programmatic dependent of rope_qk_store_kv (its cached rows loaded before
// the wait, the query's own row after it).
TEST_CASE("attention with RoPE, KV store and merge fused in equals the separate kernels bit for bit", "[kernels]") {
  struct cfg {
    std::uint32_t n_head, n_head_kv, hd;
  };
  for (const cfg c : {cfg{8, 2, 32}, cfg{28, 4, 128}, cfg{64, 8, 64}})
  for (const std::uint32_t split : {k_attn_split_decode, 64u, 256u}) {  // the decode split (32), 64, 256
    INFO("heads " << c.n_head << "/" << c.n_head_kv << " hd " << c.hd << " split " << split);
    const std::uint32_t qd = c.n_head * c.hd, kvd = c.n_head_kv * c.hd, cap = 700, positions = 1024;
    std::vector<float2> table(std::size_t{positions} * c.hd / 2);
    cpu::rope_params rp;
    rp.n_dims = c.hd;
    rp.freq_base = 1e6f;
    std::vector<float> cs(c.hd / 2), sn(c.hd / 2);
    for (std::uint32_t p = 0; p < positions; ++p) {
      cpu::rope_angles(rp, p, cs.data(), sn.data());
      for (std::uint32_t i = 0; i < c.hd / 2; ++i) table[std::size_t{p} * c.hd / 2 + i] = make_float2(cs[i], sn[i]);
    }
    // Four sequences (one query each, positions in different splits, one at a split boundary; the new
    // row in the first, second (100 with 64-key splits) and fifth round (641 with 256) of its split).
    const std::vector<std::int32_t> pos = {0, 64, 100, 641};
    const std::uint32_t nq = static_cast<std::uint32_t>(pos.size());
    const std::size_t per_seq = kv_seq_elems({2, c.n_head_kv, c.hd}, cap);
    std::vector<__half> cache0(per_seq * nq);
    const auto fill = random_normal(cache0.size(), 31);
    for (std::size_t i = 0; i < cache0.size(); ++i) cache0[i] = to_half(model::fp32_to_fp16(fill[i]));
    const auto q = random_normal(std::size_t{nq} * qd, 32), k = random_normal(std::size_t{nq} * kvd, 33),
               v = random_normal(std::size_t{nq} * kvd, 34);
    device_buffer<float2> dt(table);
    device_buffer<std::int32_t> dpos(pos), dtok(std::vector<std::int32_t>{0, 1, 2, 3});
    const std::uint32_t splits = attn_splits_for(cap, split);

    device_buffer<std::uint32_t> counters(std::vector<std::uint32_t>(std::size_t{nq} * c.n_head_kv, 0));
    auto run = [&](bool fused, bool fused_merge, std::vector<float>& out_host, std::vector<__half>& cache_host,
                   cudaStream_t stream = nullptr, bool own_row_in_smem = true, bool early_trigger = false,
                   int merge_trigger = 0) {
      device_buffer<__half> cache(cache0);
      std::vector<kv_seq_desc> seqs(nq);
      for (std::uint32_t i = 0; i < nq; ++i) {
        seqs[i].base = cache.get() + per_seq * i;
        seqs[i].capacity = static_cast<std::int32_t>(cap);
      }
      device_buffer<kv_seq_desc> dseq(seqs);
      device_buffer<float> dq(q), dk(k), dv(v), po(std::size_t{nq} * c.n_head * splits * c.hd), out(std::size_t{nq} * qd);
      device_buffer<float2> pml(std::size_t{nq} * c.n_head * splits);
      if (!fused) {
        rope_kv_args r;
        r.q = dq.get();
        r.ldq = qd;
        r.k = dk.get();
        r.ldk = kvd;
        r.v = dv.get();
        r.ldv = kvd;
        r.cos_sin = dt.get();
        r.table_positions = positions;
        r.seqs = dseq.get();
        r.token_seq = dtok.get();
        r.token_pos = dpos.get();
        r.layer = 1;
        r.n = nq;
        r.n_head = c.n_head;
        r.n_head_kv = c.n_head_kv;
        r.head_dim = c.hd;
        r.n_rot = c.hd;
        rope_qk_store_kv(r, stream);
      }
      attention_args a = attention_inputs({c.n_head, c.n_head_kv, c.hd, 1, nq, split, splits}, dq.get(), dseq.get(),
                                          dtok.get(), dpos.get(), po.get(), pml.get(), out.get());
      if (fused) {
        a.k_new = dk.get();
        a.ldk = kvd;
        a.v_new = dv.get();
        a.ldv = kvd;
        a.cos_sin = dt.get();
        a.table_positions = positions;
        a.own_row_in_smem = own_row_in_smem;
      }
      if (fused_merge) {
        a.merge_counters = counters.get();
        a.pdl = true;
      }
      if (stream) a.pdl = true;
      a.early_trigger = early_trigger;
      a.merge_trigger = merge_trigger;
      attention(a, stream);
      if (stream) REQUIRE(cudaStreamSynchronize(stream) == cudaSuccess);
      out_host = out.download();
      cache_host = cache.download();
    };
    std::vector<float> out_sep, out_fused;
    std::vector<__half> cache_sep, cache_fused;
    run(false, false, out_sep, cache_sep);
    run(true, false, out_fused, cache_fused);
    CHECK(std::memcmp(out_sep.data(), out_fused.data(), out_sep.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(cache_sep.data(), cache_fused.data(), cache_sep.size() * sizeof(__half)) == 0);
    {
      INFO("fused RoPE, the new row loaded from memory after its store (own_row_in_smem off)");
      std::vector<float> out_m;
      std::vector<__half> cache_m;
      run(true, false, out_m, cache_m, nullptr, false);
      CHECK(std::memcmp(out_sep.data(), out_m.data(), out_sep.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(cache_sep.data(), cache_m.data(), cache_sep.size() * sizeof(__half)) == 0);
    }
    for (int rep = 0; rep < 2; ++rep) {  // twice: the counters must come back to zero
      INFO("fused merge, repetition " << rep);
      std::vector<float> out_m;
      std::vector<__half> cache_m;
      run(true, true, out_m, cache_m);
      CHECK(std::memcmp(out_sep.data(), out_m.data(), out_sep.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(cache_sep.data(), cache_m.data(), cache_sep.size() * sizeof(__half)) == 0);
      const auto cnt = counters.download();
      CHECK(std::all_of(cnt.begin(), cnt.end(), [](std::uint32_t v) { return v == 0; }));
    }
    // And the fused run really wrote the new positions (the separate one is checked against the CPU above).
    CHECK(std::memcmp(cache0.data(), cache_fused.data(), cache0.size() * sizeof(__half)) != 0);
    {
      // The early loads may overlap rope_qk_store_kv only as the scheduler allows: a load of the new
      // row before the wait would read cache0's stale row and fail here, but only if it runs early
      // enough — this catches a broken ordering, it cannot force one.
      INFO("separate RoPE + KV store, attention as its programmatic dependent (on a stream of its own)");
      cudaStream_t stream = nullptr;
      REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
      for (const bool early : {false, true}) {
        INFO("split kernel triggers the merge before its wait: " << early);
        std::vector<float> out_p;
        std::vector<__half> cache_p;
        run(false, false, out_p, cache_p, stream, true, early);
        CHECK(std::memcmp(out_sep.data(), out_p.data(), out_sep.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(cache_sep.data(), cache_p.data(), cache_sep.size() * sizeof(__half)) == 0);
      }
      for (const int merge_trigger : {1, 2}) {
        INFO("fused RoPE; the merge kernel lets its dependent launch " << (merge_trigger == 1 ? "after its wait" : "once its partials have landed"));
        std::vector<float> out_p;
        std::vector<__half> cache_p;
        run(true, false, out_p, cache_p, stream, true, true, merge_trigger);
        CHECK(std::memcmp(out_sep.data(), out_p.data(), out_sep.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(cache_sep.data(), cache_p.data(), cache_sep.size() * sizeof(__half)) == 0);
      }
      cudaStreamDestroy(stream);
    }
  }
}

TEST_CASE("prefill GEMM on dequantized fp16 tiles matches fp64 on the same operands", "[kernels]") {
  device_context ctx(0);
  struct cfg {
    ggml_type t;
    std::uint32_t rows, cols, n;
  };
  std::vector<cfg> cfgs = {{ggml_type::q4_k, 256, 512, 7},    {ggml_type::q6_k, 512, 3584, 64}, {ggml_type::q8_0, 3584, 3584, 33},
                           {ggml_type::f16, 512, 3584, 512},  {ggml_type::bf16, 300, 256, 3},  {ggml_type::q5_0, 96, 1024, 17},
                           {ggml_type::q4_0, 64, 256, 1},     {ggml_type::q5_k, 128, 768, 9},  {ggml_type::f32, 40, 64, 5}};
  if (!reduced_run()) cfgs.push_back({ggml_type::q4_k, 18944, 3584, 512});
  for (const cfg c : cfgs) {
    INFO("type " << model::type_name(c.t) << " " << c.rows << "x" << c.cols << " tokens " << c.n);
    const auto raw = random_blocks(c.t, c.rows, c.cols, c.rows + c.n);
    const auto w = dequantize_all(c.t, raw, c.rows, c.cols);
    uploaded_matrix m = upload_matrix(c.t, c.rows, c.cols, raw);
    const auto x = random_normal(std::size_t{c.n} * c.cols, 3);
    std::vector<__half> xh(x.size());
    std::vector<float> xr(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::uint16_t b = model::fp32_to_fp16(x[i]);
      xh[i] = to_half(b);
      xr[i] = model::fp16_to_fp32(b);
    }
    const auto y0 = random_normal(std::size_t{c.n} * c.rows, 4);
    device_buffer<__half> dx(xh), tile(std::size_t{1} << 22);
    device_buffer<float> dy(y0);
    gemm_args g;
    g.w = m.m;
    g.x = dx.get();
    g.ldx = c.cols;
    g.n = c.n;
    g.y = dy.get();
    g.ldy = c.rows;
    g.accumulate = true;
    g.tile = tile.get();
    g.tile_elems = tile.size();
    gemm_f16(ctx, g);
    ctx.synchronize();
    const auto got = dy.download();
    std::vector<std::size_t> bad;
    parallel_for(c.rows, [&](std::size_t r) {
      for (std::uint32_t t = 0; t < c.n; ++t) {
        double s = y0[std::size_t{t} * c.rows + r], mag = std::fabs(s);
        for (std::uint32_t k = 0; k < c.cols; ++k) {
          const double p = static_cast<double>(half_round(w[r * c.cols + k])) * xr[std::size_t{t} * c.cols + k];
          s += p;
          mag += std::fabs(p);
        }
        if (!(std::fabs(got[std::size_t{t} * c.rows + r] - s) <= 2e-3 * mag + 1e-6)) {
          static std::mutex mu;
          std::lock_guard lk(mu);
          bad.push_back(r);
        }
      }
    });
    CHECK(bad.empty());
  }
}
