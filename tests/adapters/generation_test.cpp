// The generation loop: a job gives identical tokens alone and inside batches of 4 and 16 (determinism by
// construction), stop conditions (EOG, stop strings across token boundaries, max_tokens, context, cancel),
// streaming text that never splits a UTF-8 sequence or leaks part of a stop string, and cleanup on errors.
#include <catch2/catch.hpp>

#include <map>

#include "adapter_test_support.hpp"
#include "adapters/cpu_engine.hpp"
#include "adapters/generation.hpp"

using namespace worker::adapters;
using worker::adapters::test::random_tokens;
using worker::adapters::test::synth_model;

namespace {

std::unique_ptr<engine> open(const std::string& preset, const std::string& weights) {
  cpu_engine_options o;
  o.n_threads = 2;
  o.max_sequences = 16;
  o.max_context = 256;
  return open_cpu_engine(synth_model(preset, weights), o);
}

generation_request sampled_job(std::uint64_t i) {
  generation_request r;
  r.prompt = random_tokens(4 + (i * 7) % 17, 100 + i);
  r.max_tokens = 20;
  r.sampling.temperature = 0.7f + 0.05f * static_cast<float>(i % 5);
  r.sampling.top_k = i % 2 ? 40 : 0;
  r.sampling.top_p = 0.95f;
  r.sampling.repetition_penalty = 1.1f;
  r.sampling.seed = 1000 + i;
  return r;
}

// "<id>": the test detokenizer. (Built with append: GCC 12 warns falsely on "<" + std::string.)
std::string angle_text(token_id id) {
  std::string s(1, '<');
  s.append(std::to_string(id));
  s.push_back('>');
  return s;
}

// Wraps an engine and reports a small model context, to reach the context limit quickly.
class small_context_engine final : public engine {
 public:
  small_context_engine(std::unique_ptr<engine> inner, std::uint32_t context) : inner_(std::move(inner)) {
    summary_ = inner_->summary();
    summary_.context_length = context;
  }
  const model_summary& summary() const override { return summary_; }
  sequence_handle open_sequence(std::uint32_t n) override { return inner_->open_sequence(n); }
  void close_sequence(sequence_handle s) noexcept override { inner_->close_sequence(s); }
  std::uint32_t sequence_length(sequence_handle s) const override { return inner_->sequence_length(s); }
  std::vector<forward_output> forward(std::span<const forward_item> items) override { return inner_->forward(items); }

 private:
  std::unique_ptr<engine> inner_;
  model_summary summary_;
};

}  // namespace

TEST_CASE("a job generates the same tokens alone and inside batches of 4 and 16", "[generation][determinism]") {
  for (const auto& [preset, weights] : {std::pair{"tiny-qwen2", "q8_0"}, std::pair{"tiny-gpt-oss", "mxfp4"}}) {
    INFO(preset);
    auto e = open(preset, weights);
    const generation_request job = sampled_job(3);
    const auto alone = generate(*e, job);
    REQUIRE(alone.tokens.size() == 20);
    for (const std::size_t batch : {4u, 16u}) {
      std::vector<generation_request> jobs;
      for (std::size_t i = 0; i < batch; ++i) jobs.push_back(sampled_job(50 + i));
      jobs[batch / 2] = job;
      const auto results = generate_batch(*e, jobs);
      CHECK(results[batch / 2].tokens == alone.tokens);
    }
    // Sampling with another seed changes the tokens (so the test above is not comparing constants).
    generation_request other = job;
    other.sampling.seed += 1;
    CHECK(generate(*e, other).tokens != alone.tokens);
  }
}

TEST_CASE("generation stops at an end-of-generation token and includes it", "[generation]") {
  auto e = open("tiny-qwen2", "q8_0");
  generation_request r;
  r.prompt = random_tokens(10, 9);
  r.max_tokens = 12;
  r.sampling.temperature = 0.0f;
  const auto free_run = generate(*e, r);
  REQUIRE(free_run.reason == stop_reason::max_tokens);
  REQUIRE(free_run.tokens.size() == 12);
  r.eog_tokens = {free_run.tokens[4]};
  const auto stopped = generate(*e, r);
  CHECK(stopped.reason == stop_reason::eog);
  // Stops at the first occurrence of that token.
  const auto first = std::find(free_run.tokens.begin(), free_run.tokens.end(), free_run.tokens[4]) - free_run.tokens.begin();
  CHECK(stopped.tokens.size() == static_cast<std::size_t>(first + 1));
}

TEST_CASE("stop strings match across token boundaries and are never streamed", "[generation]") {
  auto e = open("tiny-qwen2", "q8_0");
  generation_request r;
  r.prompt = random_tokens(8, 10);
  r.max_tokens = 10;
  r.sampling.temperature = 0.0f;
  // Each token's text is "<id>", so a stop string can start inside one token and end in the next.
  generation_hooks hooks;
  hooks.token_text = angle_text;
  const auto free_run = generate(*e, r, hooks);
  REQUIRE(free_run.tokens.size() == 10);
  const std::string t3 = angle_text(free_run.tokens[3]);
  const std::string t4 = angle_text(free_run.tokens[4]);
  const std::string stop = t3.substr(2) + t4.substr(0, 3);  // spans tokens 3 and 4
  r.stop_strings = {stop};
  std::string streamed;
  hooks.on_text = [&](std::size_t job, std::string_view text) {
    CHECK(job == 0);
    streamed += text;
    CHECK(streamed.find(stop) == std::string::npos);
  };
  const auto stopped = generate(*e, r, hooks);
  CHECK(stopped.reason == stop_reason::stop_string);
  CHECK(stopped.stop_string == stop);
  CHECK(stopped.tokens.size() == 5);
  CHECK(stopped.text == free_run.text.substr(0, free_run.text.find(stop)));
  CHECK(streamed == stopped.text);
}

TEST_CASE("text_holdback keeps back incomplete UTF-8 and possible stop-string starts", "[generation]") {
  const std::vector<std::string> none;
  CHECK(text_holdback("abc", none) == 0);
  CHECK(text_holdback("ab\xE2\x82", none) == 2);  // 2 of the 3 bytes of "€"
  CHECK(text_holdback("ab\xE2\x82\xAC", none) == 0);
  CHECK(text_holdback("ab\xF0\x9F", none) == 2);
  const std::vector<std::string> stops = {"</end>", "xyz"};
  CHECK(text_holdback("hello </e", stops) == 3);
  CHECK(text_holdback("hello <", stops) == 1);
  CHECK(text_holdback("hello xy", stops) == 2);
  CHECK(text_holdback("hello", stops) == 0);
}

TEST_CASE("generation stops when the context is full, and on cancel", "[generation]") {
  small_context_engine e(open("tiny-qwen2", "q8_0"), 16);
  generation_request r;
  r.prompt = random_tokens(10, 11);
  r.max_tokens = 50;
  r.sampling.temperature = 0.0f;
  const auto full = generate(e, r);
  CHECK(full.reason == stop_reason::context_full);
  CHECK(full.tokens.size() == 6);

  generation_hooks hooks;
  int calls = 0;
  hooks.cancelled = [&](std::size_t) { return ++calls == 3; };
  const auto cancelled = generate(e, r, hooks);
  CHECK(cancelled.reason == stop_reason::cancelled);
  CHECK(cancelled.tokens.size() == 3);
}

TEST_CASE("bad requests throw typed errors and release every sequence", "[generation][errors]") {
  cpu_engine_options o;
  o.n_threads = 1;
  o.max_sequences = 2;
  o.max_context = 64;
  auto e = open_cpu_engine(synth_model("tiny-qwen2", "q8_0"), o);
  small_context_engine small(std::move(e), 64);
  std::vector<generation_request> jobs(2);
  jobs[0].prompt = random_tokens(4, 1);
  jobs[0].max_tokens = 4;
  jobs[1].prompt = {};
  try {
    generate_batch(small, jobs);
    FAIL("expected invalid_argument");
  } catch (const engine_error& err) {
    CHECK(err.code() == engine_error_code::invalid_argument);
  }
  jobs[1].prompt = random_tokens(64, 2);
  try {
    generate_batch(small, jobs);
    FAIL("expected context_overflow");
  } catch (const engine_error& err) {
    CHECK(err.code() == engine_error_code::context_overflow);
  }
  // Both slots are free again.
  auto a = small.open_sequence(8);
  auto b = small.open_sequence(8);
  small.close_sequence(a);
  small.close_sequence(b);
}
