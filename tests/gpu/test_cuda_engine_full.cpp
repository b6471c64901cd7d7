// The CUDA engine against the CPU engine on full-size synthetic Qwen2.5-7B files (Q4_K_M, Q8_0, F16),
// on the GPU host: WORKER_ORCD_FULL_MODELS lists the files (scripts/gpu-host-run.sh generates them
// under /tmp); without it the test is skipped (exit 77) — it needs the files, not only a GPU.
// Checks, per file: teacher-forced next-token distributions over a 32-token prompt (top-1 identical
// where the CPU's top-2 margin > 0.02; max |Δ log p| over the CPU's top 20 < 0.06, as for the tiny
// models) and the greedy continuation of WORKER_ORCD_FULL_GREEDY tokens (default 64) identical up to
// the first step where the CPU engine's own top-2 margin is below that same 0.02: a near-tie that the
// stated tolerance cannot decide (seen once, H100 2026-11-27 23:12 UTC: Q4_K_M diverged at token 62,
// CPU margin 0.0049, with max |Δ log p| 0.028). A divergence at any decisive step fails, and the
// warning reports where the continuations part and the margin there.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "adapters/cpu_engine.hpp"
#include "adapters/cuda_engine.hpp"
#include "adapters/sampler.hpp"
#include "tests/gpu/engine_test_support.hpp"
#include "tests/gpu/gpu_test_support.hpp"

using namespace worker;
using namespace worker::adapters;
using namespace worker::gpu::test;

namespace {

std::vector<std::string> full_models() {
  std::vector<std::string> v;
  if (const char* p = std::getenv("WORKER_ORCD_FULL_MODELS")) {
    std::istringstream in(p);
    for (std::string s; in >> s;) v.push_back(s);
  }
  return v;
}

const bool k_have_models = [] {
  if (full_models().empty()) {
    std::printf("SKIPPED: WORKER_ORCD_FULL_MODELS is not set (full-size model files are generated on the GPU host)\n");
    std::exit(77);
  }
  return true;
}();

}  // namespace

TEST_CASE("full-size qwen2.5-7b: CUDA engine matches the CPU engine (teacher-forced and greedy)", "[engine][full]") {
  const int greedy_n = std::getenv("WORKER_ORCD_FULL_GREEDY") ? std::atoi(std::getenv("WORKER_ORCD_FULL_GREEDY")) : 64;
  for (const auto& path : full_models()) {
    INFO("model " << path);
    cpu_engine_options co;
    co.max_context = 256;
    auto cpu = open_cpu_engine(path, co);
    cuda_engine_options go;
    go.max_context = 256;
    go.max_sequences = 2;
    auto gpu = open_cuda_engine(path, go);
    const std::uint32_t vocab = gpu->summary().vocab_size;
    const auto prompt = random_prompt(32, 2024);

    auto logits_all = [&](engine& e) {
      const auto s = e.open_sequence(200);
      const forward_item it{s, prompt, true};
      auto o = e.forward(std::span(&it, 1));
      e.close_sequence(s);
      return std::move(o[0].logits);
    };
    const auto ref = logits_all(*cpu), got = logits_all(*gpu);
    std::size_t decisive = 0, mismatch = 0;
    double max_dlogp = 0;
    for (std::size_t r = 0; r < prompt.size(); ++r) {
      const auto c = compare_rows(&ref[r * vocab], &got[r * vocab], vocab);
      max_dlogp = std::max(max_dlogp, c.max_dlogp);
      if (c.ref_margin > 0.02) {
        ++decisive;
        if (!c.top1_same) ++mismatch;
      }
    }

    auto greedy = [&](engine& e, std::vector<double>* margins) {
      const auto s = e.open_sequence(200);
      std::vector<token_id> out;
      forward_item it{s, prompt, false};
      auto o = e.forward(std::span(&it, 1));
      for (int i = 0; i < greedy_n; ++i) {
        if (margins) {
          const auto top = top_k_ids(o[0].logits.data(), vocab, 2);
          margins->push_back(o[0].logits[top[0]] - o[0].logits[top[1]]);
        }
        out.push_back(argmax(o[0].logits));
        if (i + 1 == greedy_n) break;
        it = forward_item{s, std::span(&out.back(), 1), false};
        o = e.forward(std::span(&it, 1));
      }
      e.close_sequence(s);
      return out;
    };
    std::vector<double> margins;
    const auto want = greedy(*cpu, &margins), have = greedy(*gpu, nullptr);
    std::size_t first_diff = want.size();
    for (std::size_t i = 0; i < want.size(); ++i) {
      if (want[i] != have[i]) {
        first_diff = i;
        break;
      }
    }
    WARN(path << ": teacher-forced max|dlogp| " << max_dlogp << ", top-1 mismatches " << mismatch << " of " << decisive
              << " decisive positions; greedy " << greedy_n << " tokens: "
              << (first_diff == want.size() ? std::string("identical")
                                            : "first difference at " + std::to_string(first_diff) + " (CPU margin " +
                                                  std::to_string(margins[first_diff]) + ")"));
    CHECK(mismatch == 0);
    CHECK(max_dlogp < 0.06);
    if (first_diff < want.size()) CHECK(margins[first_diff] < 0.02);
  }
}
