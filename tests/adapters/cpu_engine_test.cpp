// The CPU engine's contracts on tiny synthetic models of both architectures: prefill equals decode,
// results do not depend on threads or on what else shares a forward call (bit for bit), typed errors
// leave the engine as it was, and the adapter registry picks and validates architectures.
#include <catch2/catch.hpp>

#include <cstring>

#include "adapter_test_support.hpp"
#include "adapters/cpu_engine.hpp"
#include "adapters/registry.hpp"
#include "model/gguf.hpp"

using namespace worker::adapters;
using worker::adapters::test::random_tokens;
using worker::adapters::test::synth_model;

namespace {

std::unique_ptr<engine> open(const std::string& preset, const std::string& weights, unsigned threads = 2) {
  cpu_engine_options o;
  o.n_threads = threads;
  o.max_sequences = 8;
  o.max_context = 512;
  return open_cpu_engine(synth_model(preset, weights), o);
}

// Logits of every position of `tokens` in one prefill.
std::vector<float> prefill_all(engine& e, const std::vector<token_id>& tokens) {
  auto s = e.open_sequence(static_cast<std::uint32_t>(tokens.size()));
  forward_item item{s, tokens, true};
  auto out = e.forward(std::span(&item, 1));
  e.close_sequence(s);
  return out[0].logits;
}

const char* k_presets[][2] = {{"tiny-qwen2", "q4_k_m"}, {"tiny-gpt-oss", "mxfp4"}};

}  // namespace

TEST_CASE("one prefill and token-by-token decoding give identical logits", "[cpu_engine]") {
  for (const auto& [preset, weights] : k_presets) {
    INFO(preset);
    auto e = open(preset, weights);
    // 48 tokens cross tiny-gpt-oss's 32-token sliding window.
    const auto tokens = random_tokens(48, 1);
    const auto all = prefill_all(*e, tokens);
    const std::size_t vocab = e->summary().vocab_size;
    auto s = e->open_sequence(48);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      forward_item item{s, std::span(tokens).subspan(i, 1), false};
      const auto out = e->forward(std::span(&item, 1));
      REQUIRE(out[0].rows == 1);
      REQUIRE(std::memcmp(out[0].logits.data(), all.data() + i * vocab, vocab * sizeof(float)) == 0);
    }
    CHECK(e->sequence_length(s) == 48);
    e->close_sequence(s);
  }
}

TEST_CASE("logits do not depend on the number of threads", "[cpu_engine][determinism]") {
  for (const auto& [preset, weights] : k_presets) {
    INFO(preset);
    const auto tokens = random_tokens(20, 2);
    auto one = open(preset, weights, 1);
    auto three = open(preset, weights, 3);
    REQUIRE(prefill_all(*one, tokens) == prefill_all(*three, tokens));
  }
}

TEST_CASE("a sequence's logits are the same alone and batched with other sequences", "[cpu_engine][determinism]") {
  for (const auto& [preset, weights] : k_presets) {
    INFO(preset);
    auto e = open(preset, weights);
    const auto a = random_tokens(12, 3), b = random_tokens(7, 4), c = random_tokens(30, 5);
    const auto alone = prefill_all(*e, a);
    // Batched: b and c get a head start so the batch mixes a prefill with decode steps of others.
    auto sa = e->open_sequence(12), sb = e->open_sequence(20), sc = e->open_sequence(40);
    forward_item warm[] = {{sb, std::span(b).first(6), false}, {sc, std::span(c).first(29), false}};
    e->forward(warm);
    forward_item batch[] = {{sb, std::span(b).subspan(6), false}, {sa, a, true}, {sc, std::span(c).subspan(29), true}};
    const auto out = e->forward(batch);
    REQUIRE(out.size() == 3);
    CHECK(out[0].rows == 1);
    CHECK(out[1].rows == 12);
    CHECK(out[1].logits == alone);
    e->close_sequence(sa);
    e->close_sequence(sb);
    e->close_sequence(sc);
  }
}

TEST_CASE("typed errors leave sequences unchanged and the engine usable", "[cpu_engine][errors]") {
  cpu_engine_options o;
  o.n_threads = 2;
  o.max_sequences = 2;
  o.max_context = 64;
  o.kv_budget_bytes = 1 << 20;  // 1 MiB: tiny-qwen2 needs 4 layers · 2 · 64 floats · 4 B = 2 KiB per position
  auto e = open_cpu_engine(synth_model("tiny-qwen2", "q4_k_m"), o);

  auto code_of = [](auto&& f) {
    try {
      f();
    } catch (const engine_error& err) {
      return err.code();
    }
    FAIL("no engine_error thrown");
    return engine_error_code::internal;
  };
  CHECK(code_of([&] { e->open_sequence(65); }) == engine_error_code::context_overflow);
  CHECK(code_of([&] { e->open_sequence(0); }) == engine_error_code::invalid_argument);
  CHECK(code_of([&] { e->open_sequence(600); }) == engine_error_code::context_overflow);

  auto s = e->open_sequence(8);
  const auto toks = random_tokens(6, 6);
  forward_item ok{s, toks, false};
  e->forward(std::span(&ok, 1));
  CHECK(e->sequence_length(s) == 6);

  const auto three = random_tokens(3, 7);
  forward_item too_long{s, three, false};
  CHECK(code_of([&] { e->forward(std::span(&too_long, 1)); }) == engine_error_code::context_overflow);
  CHECK(e->sequence_length(s) == 6);

  const std::vector<token_id> bad = {1, static_cast<token_id>(e->summary().vocab_size)};
  forward_item bad_item{s, bad, false};
  CHECK(code_of([&] { e->forward(std::span(&bad_item, 1)); }) == engine_error_code::invalid_argument);
  const std::vector<token_id> none;
  forward_item empty{s, none, false};
  CHECK(code_of([&] { e->forward(std::span(&empty, 1)); }) == engine_error_code::invalid_argument);
  forward_item twice[] = {{s, std::span(toks).first(1), false}, {s, std::span(toks).first(1), false}};
  CHECK(code_of([&] { e->forward(twice); }) == engine_error_code::invalid_argument);
  CHECK(e->sequence_length(s) == 6);

  // Slots: 2 at most; the KV budget: 1 MiB allows 64-position sequences (128 KiB each) twice.
  auto s2 = e->open_sequence(64);
  CHECK(code_of([&] { e->open_sequence(8); }) == engine_error_code::kv_exhausted);
  e->close_sequence(s2);
  e->close_sequence(s2);  // closing twice is harmless
  CHECK(code_of([&] { e->sequence_length(s2); }) == engine_error_code::invalid_argument);

  // The failed calls changed nothing: continuing gives the same logits as a fresh prefill.
  forward_item last{s, std::span(three).first(2), false};
  const auto cont = e->forward(std::span(&last, 1));
  std::vector<token_id> all = toks;
  all.insert(all.end(), three.begin(), three.begin() + 2);
  const auto fresh = prefill_all(*e, all);
  const std::size_t vocab = e->summary().vocab_size;
  CHECK(std::memcmp(cont[0].logits.data(), fresh.data() + 7 * vocab, vocab * sizeof(float)) == 0);
  e->close_sequence(s);
}

TEST_CASE("the KV budget bounds the total reserved positions", "[cpu_engine][errors]") {
  cpu_engine_options o;
  o.n_threads = 1;
  o.max_sequences = 8;
  o.kv_budget_bytes = 100 * 2 * 4 * 64 * sizeof(float) * 2;  // room for 200 positions of tiny-qwen2
  auto e = open_cpu_engine(synth_model("tiny-qwen2", "q4_k_m"), o);
  auto a = e->open_sequence(150);
  try {
    e->open_sequence(100);
    FAIL("expected kv_exhausted");
  } catch (const engine_error& err) {
    CHECK(err.code() == engine_error_code::kv_exhausted);
  }
  auto b = e->open_sequence(50);
  e->close_sequence(a);
  auto c = e->open_sequence(100);
  e->close_sequence(b);
  e->close_sequence(c);
}

TEST_CASE("the summary describes the model", "[cpu_engine]") {
  auto q = open("tiny-qwen2", "q4_k_m");
  CHECK(q->summary().architecture == "qwen2");
  CHECK(q->summary().quantization == "Q4_K_M");
  CHECK(q->summary().vocab_size == 152064);
  CHECK(q->summary().context_length == 32768);
  CHECK(q->summary().device.rfind("cpu", 0) == 0);
  auto g = open("tiny-gpt-oss", "mxfp4");
  CHECK(g->summary().architecture == "gpt-oss");
  CHECK(g->summary().quantization == "MXFP4_MOE");
  CHECK(g->summary().vocab_size == 201088);
}

TEST_CASE("the registry lists both architectures and refuses mutations that do not apply", "[registry]") {
  std::vector<std::string> names;
  for (const auto& a : registered_architectures()) names.emplace_back(a.name);
  CHECK(names == std::vector<std::string>{"qwen2", "gpt-oss"});
  const auto file = worker::model::gguf_file::open(synth_model("tiny-qwen2", "q4_k_m"));
  adapter_options o;
  o.mutation = adapter_mutation::no_sinks;
  CHECK_THROWS_AS(load_decoder_model(file, o), std::invalid_argument);
  o.mutation = adapter_mutation::rope_interleaved;
  const auto m = load_decoder_model(file, o);
  CHECK(m.layers.front().attention.rope.style == worker::cpu::rope_style::interleaved);
  CHECK(adapter_mutation_from_string("no_yarn") == adapter_mutation::no_yarn);
  CHECK_THROWS_AS(adapter_mutation_from_string("nope"), std::invalid_argument);
}

TEST_CASE("the gpt-oss adapter builds sliding-window even layers, sinks and YaRN from the file", "[registry]") {
  const auto file = worker::model::gguf_file::open(synth_model("tiny-gpt-oss", "mxfp4"));
  const auto m = load_decoder_model(file);
  REQUIRE(m.layers.size() == 4);
  for (std::size_t l = 0; l < 4; ++l) {
    const auto& a = m.layers[l].attention;
    CHECK(a.attn.window == (l % 2 == 0 ? 32u : 0u));
    CHECK(a.sinks.present());
    CHECK(a.attn.head_dim == 64);
    CHECK(a.attn.scale == Approx(0.125f));
    CHECK(a.rope.ext_factor == 1.0f);
    CHECK(a.rope.freq_scale == Approx(1.0f / 32.0f));
    CHECK(a.rope.n_ctx_orig == 4096);
    const auto& f = std::get<moe_ffn_block>(m.layers[l].ffn);
    CHECK(f.route.n_expert == 8);
    CHECK(f.route.n_used == 4);
    CHECK(f.router_bias.present());
  }
}
