// Generated files: bit-identical for any thread count, and read back through the independent GGUF
// reader (model/gguf.hpp, model/hparams.hpp, tokenizer_vocab_from_gguf) with every tensor's name,
// shape and type as the preset says and dequantized values close to the floats they were made from.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "model/gguf.hpp"
#include "model/hparams.hpp"
#include "model/quant.hpp"
#include "model/synth/synth_generator.hpp"
#include "model/synth/synth_preset.hpp"
#include "model/synth/synth_values.hpp"
#include "model/tokenizer_vocab.hpp"

namespace {

using namespace worker::model;
using namespace worker::model::synth;

const std::filesystem::path k_dir = WORKER_ORCD_SYNTH_TMP;

const char* tokenizer_for(const synth_preset& p) {
  return p.arch == synth_arch::qwen2 ? WORKER_ORCD_QWEN_TOKENIZER : WORKER_ORCD_GPT_OSS_TOKENIZER;
}

std::filesystem::path generate(const std::string& preset, const std::string& weights, std::uint64_t seed, unsigned threads,
                               const std::string& tag) {
  std::filesystem::create_directories(k_dir);
  synth_options o;
  o.preset = preset;
  o.weights = weights;
  o.tokenizer_json = tokenizer_for(*find_synth_preset(preset));
  o.seed = seed;
  o.threads = threads;
  o.out = k_dir / (preset + "-" + weights + "-" + tag + ".gguf");
  const auto r = synth_generate(o);
  CHECK(r.file_bytes == std::filesystem::file_size(o.out));
  CHECK_FALSE(std::filesystem::exists(o.out.string() + ".partial"));
  return o.out;
}

std::vector<char> read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// RMS of the dequantization error relative to the RMS of the values, for uniform weights. Bounds are
// about 1.5x the expected quantization noise of each format (step/√12 over the values' RMS: Q8_0
// ~0.004, Q6_K ~0.015, Q5_0 ~0.03, Q4_0 ~0.06, Q4_K ~0.07, MXFP4 ~0.12); a wrong block layout gives ~1.4.
double tolerance(ggml_type t) {
  switch (t) {
    case ggml_type::f32: return 0.0;
    case ggml_type::f16: return 1e-3;
    case ggml_type::bf16: return 4e-3;
    case ggml_type::q8_0: return 0.01;
    case ggml_type::q6_k: return 0.03;
    case ggml_type::q5_0: return 0.05;
    case ggml_type::q4_0: return 0.09;
    case ggml_type::q4_k: return 0.1;
    case ggml_type::mxfp4: return 0.2;
    default: return -1.0;
  }
}

void check_file_against_plan(const std::filesystem::path& path, const synth_plan& plan, std::uint64_t seed) {
  const synth_preset& p = *plan.preset;
  const auto f = gguf_file::open(path);
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.get_string("general.architecture") == arch_name(p.arch));
  CHECK(f.get_uint("general.file_type") == plan.file_type);
  CHECK(f.get_uint("general.quantization_version") == 2u);
  CHECK(f.get_uint("worker_orcd.synth.seed") == seed);

  // Hyperparameters as the reader (with llama.cpp's defaults for absent keys) sees them.
  const auto hp = read_hparams(f);
  const auto& b = base_of(hp);
  CHECK(b.n_layer == p.n_layer);
  CHECK(b.n_embd == p.n_embd);
  CHECK(b.n_head == p.n_head);
  CHECK(b.n_head_kv == p.n_head_kv);
  CHECK(b.head_dim_k == p.head_dim);
  CHECK(b.head_dim_v == p.head_dim);
  CHECK(b.n_ctx_train == p.n_ctx_train);
  CHECK(b.rms_eps == p.rms_eps);
  CHECK(b.rope.freq_base == p.rope_base);
  CHECK(b.vocab_size == p.n_vocab);
  if (const auto* g = std::get_if<gpt_oss_hparams>(&hp)) {
    CHECK(g->n_expert == p.n_expert);
    CHECK(g->n_expert_used == p.n_expert_used);
    CHECK(g->n_ff_exp == p.n_ff_exp);
    CHECK(g->n_swa == p.sliding_window);
    CHECK(b.rope.scaling == rope_scaling_type::yarn);
    CHECK(b.rope.freq_scale == 1.0f / p.yarn_factor);
    CHECK(b.rope.n_ctx_orig == p.yarn_orig_ctx);
    CHECK(g->layer_is_swa(0));
    CHECK_FALSE(g->layer_is_swa(1));
  } else {
    CHECK(std::get<qwen2_hparams>(hp).n_ff == p.n_ff);
    CHECK(b.rope.scaling == rope_scaling_type::none);
  }

  // The tokenizer as the reader's tokenizer_vocab_from_gguf sees it equals what the importer produced.
  const auto from_file = tokenizer_vocab_from_gguf(f);
  const auto imported = synth_import_tokenizer(p, tokenizer_for(p));
  CHECK(from_file.tokens == imported.tokens);
  CHECK(from_file.token_types == imported.token_types);
  CHECK(from_file.merges == imported.merges);
  CHECK(from_file.pre == p.tokenizer.pre);
  CHECK(from_file.bos_id == p.tokenizer.bos_id);
  CHECK(from_file.eos_id == p.tokenizer.eos_id);
  CHECK(from_file.pad_id == p.tokenizer.pad_id);

  REQUIRE(f.tensors().size() == plan.tensors.size());
  std::vector<float> want, got;
  for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
    const synth_tensor& t = plan.tensors[i];
    const gguf_tensor_info& info = f.tensors()[i];
    INFO(path.filename().string() << " tensor " << t.name);
    CHECK(info.name == t.name);
    CHECK(info.type == t.type);
    CHECK(info.n_dims == t.ne.size());
    for (std::size_t d = 0; d < 4; ++d) CHECK(info.ne[d] == (d < t.ne.size() ? t.ne[d] : 1));

    // First, middle and last row of every tensor (all of a 1-D one).
    const std::int64_t ne0 = t.ne[0];
    const std::size_t rb = row_bytes(t.type, static_cast<std::size_t>(ne0));
    const auto data = f.tensor_data(info);
    for (std::int64_t row : {std::int64_t{0}, t.n_rows() / 2, t.n_rows() - 1}) {
      want.resize(static_cast<std::size_t>(ne0));
      got.resize(static_cast<std::size_t>(ne0));
      synth_fill_rows(seed, t, row, want);
      dequantize_row(t.type, data.data() + static_cast<std::size_t>(row) * rb, got.data(), got.size());
      double err = 0, ref = 0;
      for (std::size_t j = 0; j < want.size(); ++j) {
        err += (got[j] - want[j]) * double(got[j] - want[j]);
        ref += want[j] * double(want[j]);
      }
      const double rel = std::sqrt(err / ref);
      INFO("row " << row << " relative RMS error " << rel);
      CHECK(rel <= tolerance(t.type));
    }
  }
}

}  // namespace

TEST_CASE("output is bit-identical for 1 and 4 threads, and the seed changes it") {
  for (const auto& [preset, weights] : {std::pair{"tiny-qwen2", "q4_k_m"}, std::pair{"tiny-qwen2", "q5_0"},
                                        std::pair{"tiny-gpt-oss", "mxfp4"}}) {
    INFO(preset << " " << weights);
    const auto one = generate(preset, weights, 11, 1, "t1");
    const auto four = generate(preset, weights, 11, 4, "t4");
    const auto a = read_all(one);
    CHECK(a.size() > 10'000'000);
    CHECK(a == read_all(four));
    std::filesystem::remove(four);
    const auto other = generate(preset, weights, 12, 4, "s12");
    CHECK(a != read_all(other));
    std::filesystem::remove(one);
    std::filesystem::remove(other);
  }
}

TEST_CASE("every tiny preset and scheme reads back as planned, values within quantization noise") {
  for (const char* preset : {"tiny-qwen2", "tiny-gpt-oss"}) {
    const synth_preset& p = *find_synth_preset(preset);
    for (auto weights : p.weight_schemes) {
      INFO(preset << " " << weights);
      const auto path = generate(preset, std::string(weights), 5, 2, "rb");
      check_file_against_plan(path, make_synth_plan(p, weights), 5);
      std::filesystem::remove(path);
    }
  }
}

TEST_CASE("bad options are rejected before anything is written") {
  synth_options o;
  o.preset = "tiny-qwen2";
  o.tokenizer_json = WORKER_ORCD_QWEN_TOKENIZER;
  o.out = k_dir / "never.gguf";
  o.weights = "mxfp4";
  CHECK_THROWS_AS(synth_generate(o), std::invalid_argument);
  o.weights = "q8_0";
  o.preset = "llama-3";
  CHECK_THROWS_AS(synth_generate(o), std::invalid_argument);
  // The gpt-oss tokenizer does not fit a qwen2 preset (its id 151643 is not <|endoftext|>).
  o.preset = "tiny-qwen2";
  o.tokenizer_json = WORKER_ORCD_GPT_OSS_TOKENIZER;
  CHECK_THROWS(synth_generate(o));
  CHECK_FALSE(std::filesystem::exists(o.out));
  CHECK_FALSE(std::filesystem::exists(o.out.string() + ".partial"));
}
