// Presets and value streams of the synthetic model generator, checked against the real files' facts
// (model-facts.md §4.1, §4.2: names, shapes, per-type tensor counts, file sizes) and against the
// properties the generator promises (counter-based, name-keyed, bounded values).
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "model/ggml_type.hpp"
#include "model/synth/synth_preset.hpp"
#include "model/synth/synth_values.hpp"

namespace {

using namespace worker::model;
using namespace worker::model::synth;

std::map<ggml_type, int> type_counts(const synth_plan& plan) {
  std::map<ggml_type, int> counts;
  for (const auto& t : plan.tensors) counts[t.type]++;
  return counts;
}

const synth_tensor& tensor(const synth_plan& plan, const std::string& name) {
  for (const auto& t : plan.tensors) {
    if (t.name == name) return t;
  }
  FAIL("no tensor " << name);
  return plan.tensors.front();
}

std::uint64_t data_bytes(const synth_plan& plan) {
  std::uint64_t n = 0;
  for (const auto& t : plan.tensors) n += row_bytes(t.type, static_cast<std::size_t>(t.ne[0])) * static_cast<std::uint64_t>(t.n_rows());
  return n;
}

using ne_t = std::vector<std::int64_t>;

}  // namespace

TEST_CASE("qwen2.5-7b q4_k_m has the real file's 339 tensors, shapes and Q4_K/Q6_K split") {
  const auto plan = make_synth_plan(*find_synth_preset("qwen2.5-7b"), "q4_k_m");
  REQUIRE(plan.tensors.size() == 339);
  const auto counts = type_counts(plan);
  CHECK(counts.at(ggml_type::f32) == 141);
  CHECK(counts.at(ggml_type::q4_k) == 169);
  CHECK(counts.at(ggml_type::q6_k) == 29);
  CHECK(counts.size() == 3);
  CHECK(plan.file_type == 15);
  CHECK(tensor(plan, "token_embd.weight").ne == ne_t{3584, 152064});
  CHECK(tensor(plan, "token_embd.weight").type == ggml_type::q4_k);
  CHECK(tensor(plan, "blk.0.attn_q.weight").ne == ne_t{3584, 3584});
  CHECK(tensor(plan, "blk.0.attn_q.bias").ne == ne_t{3584});
  CHECK(tensor(plan, "blk.3.attn_k.weight").ne == ne_t{3584, 512});
  CHECK(tensor(plan, "blk.3.attn_v.bias").ne == ne_t{512});
  CHECK(tensor(plan, "blk.27.attn_output.weight").ne == ne_t{3584, 3584});
  CHECK(tensor(plan, "blk.9.ffn_gate.weight").ne == ne_t{3584, 18944});
  CHECK(tensor(plan, "blk.9.ffn_up.weight").ne == ne_t{3584, 18944});
  CHECK(tensor(plan, "blk.9.ffn_down.weight").ne == ne_t{18944, 3584});
  CHECK(tensor(plan, "output.weight").ne == ne_t{3584, 152064});
  CHECK(tensor(plan, "output.weight").type == ggml_type::q6_k);
  const std::set<int> s{0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27};
  for (int l = 0; l < 28; ++l) {
    const auto want = s.contains(l) ? ggml_type::q6_k : ggml_type::q4_k;
    CHECK(tensor(plan, "blk." + std::to_string(l) + ".attn_v.weight").type == want);
    CHECK(tensor(plan, "blk." + std::to_string(l) + ".ffn_down.weight").type == want);
    CHECK(tensor(plan, "blk." + std::to_string(l) + ".attn_q.weight").type == ggml_type::q4_k);
    CHECK(q4_k_m_uses_more_bits(static_cast<std::uint32_t>(l), 28) == s.contains(l));
  }
  // Public llama.cpp logs give 4.36 GiB for the real file; the data section is nearly all of it.
  CHECK(static_cast<double>(data_bytes(plan)) / (1u << 30) == Approx(4.36).epsilon(0.01));
}

TEST_CASE("qwen2.5-7b's other schemes give every 2-D weight the scheme's type") {
  const auto preset = *find_synth_preset("qwen2.5-7b");
  const std::map<std::string, std::pair<ggml_type, std::uint32_t>> schemes{
      {"q8_0", {ggml_type::q8_0, 7}}, {"f16", {ggml_type::f16, 1}}, {"bf16", {ggml_type::bf16, 32}},
      {"q4_0", {ggml_type::q4_0, 2}}, {"q5_0", {ggml_type::q5_0, 8}}};
  for (const auto& [name, want] : schemes) {
    const auto plan = make_synth_plan(preset, name);
    CHECK(plan.file_type == want.second);
    const auto counts = type_counts(plan);
    CHECK(counts.at(ggml_type::f32) == 141);
    const bool output_q6 = name == "q4_0" || name == "q5_0";  // llama-quantize's output.weight rule
    CHECK(counts.at(want.first) == (output_q6 ? 197 : 198));
    CHECK(tensor(plan, "output.weight").type == (output_q6 ? ggml_type::q6_k : want.first));
  }
  const auto f32 = make_synth_plan(preset, "f32");
  CHECK(type_counts(f32).at(ggml_type::f32) == 339);
  CHECK(f32.file_type == 0);
  CHECK_THROWS_AS(make_synth_plan(preset, "mxfp4"), std::invalid_argument);
  CHECK_THROWS_AS(make_synth_plan(preset, "q4_k_s"), std::invalid_argument);
}

TEST_CASE("gpt-oss-20b mxfp4 has the real file's 459 tensors, shapes and F32/Q8_0/MXFP4 split") {
  const auto plan = make_synth_plan(*find_synth_preset("gpt-oss-20b"), "mxfp4");
  REQUIRE(plan.tensors.size() == 459);
  const auto counts = type_counts(plan);
  CHECK(counts.at(ggml_type::f32) == 289);
  CHECK(counts.at(ggml_type::q8_0) == 98);
  CHECK(counts.at(ggml_type::mxfp4) == 72);
  CHECK(plan.file_type == 38);
  CHECK(tensor(plan, "token_embd.weight").ne == ne_t{2880, 201088});
  CHECK(tensor(plan, "blk.0.attn_q.weight").ne == ne_t{2880, 4096});
  CHECK(tensor(plan, "blk.0.attn_q.bias").ne == ne_t{4096});
  CHECK(tensor(plan, "blk.0.attn_k.weight").ne == ne_t{2880, 512});
  CHECK(tensor(plan, "blk.0.attn_v.bias").ne == ne_t{512});
  CHECK(tensor(plan, "blk.0.attn_output.weight").ne == ne_t{4096, 2880});
  CHECK(tensor(plan, "blk.0.attn_output.bias").ne == ne_t{2880});
  CHECK(tensor(plan, "blk.5.attn_sinks.weight").ne == ne_t{64});
  CHECK(tensor(plan, "blk.5.post_attention_norm.weight").ne == ne_t{2880});
  CHECK(tensor(plan, "blk.5.ffn_gate_inp.weight").ne == ne_t{2880, 32});
  CHECK(tensor(plan, "blk.5.ffn_gate_inp.weight").type == ggml_type::f32);
  CHECK(tensor(plan, "blk.5.ffn_gate_inp.bias").ne == ne_t{32});
  CHECK(tensor(plan, "blk.23.ffn_gate_exps.weight").ne == ne_t{2880, 2880, 32});
  CHECK(tensor(plan, "blk.23.ffn_up_exps.bias").ne == ne_t{2880, 32});
  CHECK(tensor(plan, "blk.23.ffn_down_exps.weight").ne == ne_t{2880, 2880, 32});
  CHECK(tensor(plan, "blk.23.ffn_down_exps.bias").ne == ne_t{2880, 32});
  CHECK(tensor(plan, "output.weight").type == ggml_type::q8_0);
  // "about 12.1 GB" for the real file (model-facts.md §4.2).
  CHECK(static_cast<double>(data_bytes(plan)) / 1e9 == Approx(12.1).epsilon(0.01));

  const auto f16 = make_synth_plan(*find_synth_preset("gpt-oss-20b"), "mxfp4-f16");
  CHECK(type_counts(f16).at(ggml_type::f16) == 98);
  CHECK(type_counts(f16).at(ggml_type::mxfp4) == 72);
  CHECK(tensor(f16, "blk.0.ffn_gate_inp.weight").type == ggml_type::f32);
  CHECK(f16.file_type == 1);
  const auto bf16 = make_synth_plan(*find_synth_preset("gpt-oss-20b"), "mxfp4-bf16");
  CHECK(type_counts(bf16).at(ggml_type::bf16) == 98);
  CHECK(bf16.file_type == 32);
}

TEST_CASE("the tiny gpt-oss preset keeps expert FFN width apart from d_model") {
  const auto plan = make_synth_plan(*find_synth_preset("tiny-gpt-oss"), "mxfp4");
  CHECK(tensor(plan, "blk.1.ffn_gate_exps.weight").ne == ne_t{256, 384, 8});
  CHECK(tensor(plan, "blk.1.ffn_down_exps.weight").ne == ne_t{384, 256, 8});
  CHECK(tensor(plan, "blk.1.attn_output.weight").ne == ne_t{512, 256});
  CHECK(tensor(plan, "token_embd.weight").ne == ne_t{256, 201088});
}

TEST_CASE("every preset and scheme has row lengths its block types can encode") {
  for (const auto& preset : synth_presets()) {
    for (auto scheme : preset.weight_schemes) {
      const auto plan = make_synth_plan(preset, scheme);
      std::set<std::string> names;
      for (const auto& t : plan.tensors) {
        INFO(preset.name << " " << scheme << " " << t.name);
        CHECK(t.ne[0] % traits(t.type).block_elems == 0);
        CHECK(names.insert(t.name).second);
        CHECK(t.dist.half_width > 0.0f);
        // 1-D tensors, biases, norms, sinks and the router stay F32 in every scheme.
        if (t.ne.size() == 1 || t.name.ends_with(".bias") || t.name.find("ffn_gate_inp") != std::string::npos) {
          CHECK(t.type == ggml_type::f32);
        }
      }
    }
  }
}

TEST_CASE("value streams are counter-based: any slice equals the same part of the whole") {
  const synth_distribution dist{0.25f, 0.5f};
  const auto key = synth_tensor_key(42, "blk.0.attn_q.weight");
  std::vector<float> whole(5000);
  synth_fill(key, dist, 0, whole);
  std::vector<float> slice(1234);
  synth_fill(key, dist, 3000, slice);
  CHECK(std::equal(slice.begin(), slice.end(), whole.begin() + 3000));

  double sum = 0, sum_sq = 0;
  for (float v : whole) {
    CHECK(v > dist.center - dist.half_width);
    CHECK(v < dist.center + dist.half_width);
    sum += v;
    sum_sq += (v - 0.25) * (v - 0.25);
  }
  // Uniform on 0.25 ± 0.5: mean 0.25, std 0.5/√3.
  CHECK(sum / whole.size() == Approx(0.25).margin(0.01));
  CHECK(std::sqrt(sum_sq / whole.size()) == Approx(0.5 / std::sqrt(3.0)).epsilon(0.03));

  std::vector<float> other_name(5000), other_seed(5000);
  synth_fill(synth_tensor_key(42, "blk.0.attn_k.weight"), dist, 0, other_name);
  synth_fill(synth_tensor_key(43, "blk.0.attn_q.weight"), dist, 0, other_seed);
  CHECK(other_name != whole);
  CHECK(other_seed != whole);
  // The first values are pinned so that a change of the stream (which would silently change every
  // generated model and every reference computed from one) is noticed. The expected numbers come from
  // a separate Python transcription of the documented recipe (FNV-1a name hash, splitmix64, top 24 bits).
  std::vector<float> pinned(2);
  synth_fill(synth_tensor_key(0, "token_embd.weight"), {0.0f, 1.0f}, 0, pinned);
  CHECK(pinned[0] == 0.3737395405769348f);
  CHECK(pinned[1] == 0.19157034158706665f);
}

TEST_CASE("output.weight rows of padding ids are quiet, and row slices agree across the split") {
  const auto plan = make_synth_plan(*find_synth_preset("tiny-qwen2"), "f32");
  const synth_tensor& out = tensor(plan, "output.weight");
  REQUIRE(out.quiet_row_begin == 151665);  // the first [PAD] id of the Qwen2.5 layout
  const std::int64_t ne0 = out.ne[0];
  // Rows 151663..151666 in one call, and one row at a time.
  std::vector<float> four(static_cast<std::size_t>(4 * ne0));
  synth_fill_rows(9, out, 151663, four);
  for (std::int64_t r = 0; r < 4; ++r) {
    std::vector<float> one(static_cast<std::size_t>(ne0));
    synth_fill_rows(9, out, 151663 + r, one);
    CHECK(std::equal(one.begin(), one.end(), four.begin() + r * ne0));
    float max_abs = 0;
    for (float v : one) max_abs = std::max(max_abs, std::fabs(v));
    const float bound = r < 2 ? out.dist.half_width : out.dist.half_width / k_quiet_row_divisor;
    CHECK(max_abs < bound);
    CHECK(max_abs > 0.9f * bound);
  }
  // Tensors without quiet rows draw every row from their distribution.
  const synth_tensor& embd = tensor(plan, "token_embd.weight");
  CHECK(embd.quiet_row_begin == -1);
  std::vector<float> a(static_cast<std::size_t>(ne0)), b(static_cast<std::size_t>(ne0));
  synth_fill_rows(9, embd, 152063, a);
  synth_fill(synth_tensor_key(9, "token_embd.weight"), embd.dist, static_cast<std::uint64_t>(152063 * ne0), b);
  CHECK(a == b);
}
