// Hyperparameters: the values of model-facts.md §1.5/§2 for the real layouts, llama.cpp's defaults for
// absent keys, and typed errors for unsupported architectures and missing keys.
#include <catch2/catch.hpp>

#include <cmath>

#include "model/gguf.hpp"
#include "model/hparams.hpp"
#include "tests/gguf/gguf_test_builder.hpp"

using namespace worker::model;
using worker::test::gguf_bytes;

namespace {

// A file with only metadata and a token_embd tensor info ([n_embd, vocab] f32 is too big for a test,
// so the embedding is declared as q8_0 over a tiny vocab: hparams read only its shape).
gguf_bytes qwen2_7b_header(bool with_optional) {
  gguf_bytes b;
  b.header(1, with_optional ? 9 : 7)
      .kv_str("general.architecture", "qwen2")
      .kv_u32("qwen2.context_length", 32768)
      .kv_u32("qwen2.embedding_length", 3584)
      .kv_u32("qwen2.block_count", 28)
      .kv_u32("qwen2.feed_forward_length", 18944)
      .kv_u32("qwen2.attention.head_count", 28)
      .kv_f32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
  if (with_optional) {
    b.kv_u32("qwen2.attention.head_count_kv", 4).kv_f32("qwen2.rope.freq_base", 1e6f);
  }
  b.tensor("token_embd.weight", {3584, 4}, 8, 0).pad_to(32).zeros(3584 / 32 * 34 * 4);
  return b;
}

gguf_bytes gpt_oss_20b_header() {
  gguf_bytes b;
  b.header(1, 17)
      .kv_str("general.architecture", "gpt-oss")
      .kv_u32("gpt-oss.context_length", 131072)
      .kv_u32("gpt-oss.embedding_length", 2880)
      .kv_u32("gpt-oss.block_count", 24)
      .kv_u32("gpt-oss.feed_forward_length", 2880)
      .kv_u32("gpt-oss.attention.head_count", 64)
      .kv_u32("gpt-oss.attention.head_count_kv", 8)
      .kv_u32("gpt-oss.attention.key_length", 64)
      .kv_u32("gpt-oss.attention.value_length", 64)
      .kv_f32("gpt-oss.attention.layer_norm_rms_epsilon", 1e-5f)
      .kv_f32("gpt-oss.rope.freq_base", 150000.0f)
      .kv_str("gpt-oss.rope.scaling.type", "yarn")
      .kv_f32("gpt-oss.rope.scaling.factor", 32.0f)
      .kv_u32("gpt-oss.rope.scaling.original_context_length", 4096)
      .kv_u32("gpt-oss.expert_count", 32)
      .kv_u32("gpt-oss.expert_used_count", 4)
      .kv_u32("gpt-oss.expert_feed_forward_length", 2880);
  b.tensor("token_embd.weight", {2880, 2}, 8, 0).pad_to(32).zeros(2880 / 32 * 34 * 2);
  return b;
}

}  // namespace

TEST_CASE("qwen2 hyperparameters with llama.cpp defaults for absent keys", "[hparams]") {
  const auto b = qwen2_7b_header(false);
  const auto f = gguf_file::parse(b.bytes());
  CHECK(detect_architecture(f) == architecture::qwen2);
  const qwen2_hparams hp = read_qwen2_hparams(f);
  CHECK(hp.base.n_embd == 3584);
  CHECK(hp.base.n_layer == 28);
  CHECK(hp.n_ff == 18944);
  CHECK(hp.base.n_head_kv == 28);   // absent -> n_head
  CHECK(hp.base.head_dim_k == 128);  // absent -> n_embd / n_head
  CHECK(hp.base.head_dim_v == 128);
  CHECK(hp.base.rope.n_rot == 128);  // absent -> head_dim
  CHECK(hp.base.rope.freq_base == 10000.0f);  // absent -> 10000
  CHECK(hp.base.rope.scaling == rope_scaling_type::none);
  CHECK(hp.base.rope.yarn_mscale() == 1.0f);
  CHECK(hp.base.vocab_size == 4);

  const auto b2 = qwen2_7b_header(true);
  const auto f2 = gguf_file::parse(b2.bytes());
  const qwen2_hparams hp2 = read_qwen2_hparams(f2);
  CHECK(hp2.base.n_head_kv == 4);
  CHECK(hp2.base.rope.freq_base == 1e6f);
  // KV cache per token (f16): 28 layers * 2 * 4 heads * 128 * 2 bytes = 57344 (model-facts §2).
  CHECK(kv_cache_bytes_f16(hp2, 1) == 57344);
}

TEST_CASE("gpt-oss hyperparameters, YaRN and the sliding-window pattern", "[hparams]") {
  const auto b = gpt_oss_20b_header();
  const auto f = gguf_file::parse(b.bytes());
  const model_hparams any = read_hparams(f);
  const auto* hp = std::get_if<gpt_oss_hparams>(&any);
  REQUIRE(hp != nullptr);
  CHECK(hp->base.head_dim_k == 64);  // key_length, not 2880/64
  CHECK(hp->base.n_head_kv == 8);
  CHECK(hp->n_expert == 32);
  CHECK(hp->n_expert_used == 4);
  CHECK(hp->n_swa == 0);         // absent in this header
  CHECK(hp->swa_pattern == 2);   // llama.cpp default for gpt-oss
  CHECK(hp->layer_is_swa(0));
  CHECK_FALSE(hp->layer_is_swa(1));
  CHECK(hp->layer_is_swa(22));
  CHECK_FALSE(hp->layer_is_swa(23));
  CHECK(hp->base.rope.scaling == rope_scaling_type::yarn);
  CHECK(hp->base.rope.freq_scale == Approx(1.0 / 32.0));
  CHECK(hp->base.rope.n_ctx_orig == 4096);
  CHECK(hp->base.rope.yarn_beta_fast == 32.0f);
  CHECK(hp->base.rope.yarn_beta_slow == 1.0f);
  CHECK(hp->base.rope.yarn_mscale() == Approx(1.3465736).epsilon(1e-6));  // 1 + 0.1 ln 32

  // KV cache: 8 kv heads * (64 + 64) * 2 bytes = 2048 bytes per position and layer; with a 128-token
  // window the 12 even layers keep 128 positions, the 12 odd layers all of them.
  gpt_oss_hparams windowed = *hp;
  windowed.n_swa = 128;
  CHECK(kv_cache_bytes_f16(windowed, 4096) == (12ull * 4096 + 12ull * 128) * 2048);
  CHECK(kv_cache_bytes_f16(windowed, 100) == 24ull * 100 * 2048);
  CHECK(kv_cache_bytes_f16(*hp, 4096) == 24ull * 4096 * 2048);  // no window: every layer is full
}

TEST_CASE("unsupported architectures fail listing the supported ones", "[hparams]") {
  gguf_bytes b;
  b.header(0, 1).kv_str("general.architecture", "llama");
  const auto f = gguf_file::parse(b.bytes());
  try {
    detect_architecture(f);
    FAIL("accepted llama");
  } catch (const gguf_error& e) {
    CHECK(e.code() == gguf_error_code::unsupported_architecture);
    const std::string msg = e.what();
    CHECK(msg.find("'llama'") != std::string::npos);
    CHECK(msg.find("qwen2") != std::string::npos);
    CHECK(msg.find("gpt-oss") != std::string::npos);
  }
}

TEST_CASE("missing required keys and inconsistent values are typed errors", "[hparams]") {
  gguf_bytes no_arch;
  no_arch.header(0, 0);
  try {
    detect_architecture(gguf_file::parse(no_arch.bytes()));
    FAIL("no error");
  } catch (const gguf_error& e) {
    CHECK(e.code() == gguf_error_code::missing_key);
  }

  gguf_bytes no_layers;
  no_layers.header(0, 3)
      .kv_str("general.architecture", "qwen2")
      .kv_u32("qwen2.context_length", 128)
      .kv_u32("qwen2.embedding_length", 64);
  try {
    read_hparams(gguf_file::parse(no_layers.bytes()));
    FAIL("no error");
  } catch (const gguf_error& e) {
    CHECK(e.code() == gguf_error_code::missing_key);
    CHECK(e.where() == "qwen2.block_count");
  }

  // Rebuild with head_count_kv 5 (28 % 5 != 0).
  gguf_bytes b;
  b.header(1, 8)
      .kv_str("general.architecture", "qwen2")
      .kv_u32("qwen2.context_length", 32768)
      .kv_u32("qwen2.embedding_length", 3584)
      .kv_u32("qwen2.block_count", 28)
      .kv_u32("qwen2.feed_forward_length", 18944)
      .kv_u32("qwen2.attention.head_count", 28)
      .kv_u32("qwen2.attention.head_count_kv", 5)
      .kv_f32("qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
  b.tensor("token_embd.weight", {3584, 1}, 8, 0).pad_to(32).zeros(3584 / 32 * 34);
  try {
    read_hparams(gguf_file::parse(b.bytes()));
    FAIL("no error");
  } catch (const gguf_error& e) {
    CHECK(e.code() == gguf_error_code::bad_shape);
  }
}
