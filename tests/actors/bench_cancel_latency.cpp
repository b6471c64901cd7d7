// Benchmark (not a test): cancel latency of the worker, from the client sending `cancel` to the client
// receiving the job's terminal CANCELLED, over loopback ZeroMQ with the CPU engine. Two situations:
// cancel during decoding (after a few tokens) and cancel during a long prefill (right after `started`).
// Prints p50/p90/p99/max per situation.
//
// usage: bench_cancel_latency [--runs N] [--model FILE] [--prefill-chunk N] [--prompt-words N]
#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

#include "actors/narration.hpp"
#include "tests/actors/support/test_worker.hpp"

using namespace worker;
using namespace worker::test;

namespace {

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void report(const char* what, const std::vector<double>& ms) {
  std::printf("%-22s n=%zu  p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n", what, ms.size(),
              percentile(ms, 0.5), percentile(ms, 0.9), percentile(ms, 0.99), *std::max_element(ms.begin(), ms.end()));
}

// Submits, waits until `tokens` tokens arrived (0: until `started`), cancels; returns the latency in ms.
double one(test_client& c, const std::string& id, const std::string& prompt, int tokens) {
  c.send(prompt_job(id, prompt, 256, 1));
  int seen = 0;
  for (;;) {
    auto r = c.recv(60s);
    if (!r) throw std::runtime_error("timeout");
    const auto k = kind_of(*r);
    if (k == "token") ++seen;
    if ((tokens == 0 && k == "started") || (tokens > 0 && seen >= tokens)) break;
  }
  const auto t0 = std::chrono::steady_clock::now();
  c.send(protocol::cancel_request{id, std::nullopt});
  const auto rest = c.until_terminal(id, 60s);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  const auto* e = std::get_if<protocol::error_reply>(&rest.back());
  if (e == nullptr || e->code != protocol::error_code::cancelled) throw std::runtime_error("job did not end CANCELLED");
  while (c.recv(1ms)) {  // drop the cancel_ack
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 100;
  int prompt_words = 400;
  auto options = tiny_worker_options();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--runs") runs = std::stoi(v);
    else if (a == "--model") options.load.model = v;
    else if (a == "--prefill-chunk") options.prefill_chunk = std::stoul(v);
    else if (a == "--prompt-words") prompt_words = std::stoi(v);
  }
  options.load.max_context = 4096;
  actors::configure_logging(actors::log_format::text, "error");  // keep the report readable
  test_worker w(options);
  test_client c(w.listen());
  std::string long_prompt;
  for (int i = 0; i < prompt_words; ++i) long_prompt += numbered(" token", i);

  // Step times for context: cancellation waits for the step in progress.
  c.send(prompt_job("baseline", "Baseline decode speed", 32, 1));
  const auto baseline = c.until_terminal("baseline", 120s);
  const auto& end = std::get<protocol::end_reply>(baseline.back());
  c.send(prompt_job("baseline-prefill", long_prompt, 1, 1));
  const auto prefill_run = c.until_terminal("baseline-prefill", 120s);
  const auto& prefill_end = std::get<protocol::end_reply>(prefill_run.back());
  const double chunks = (prefill_end.tokens_in + options.prefill_chunk - 1) / static_cast<double>(options.prefill_chunk);
  std::printf("decode step %.1f ms (%.1f tok/s); prefill of %u tokens %.0f ms = %.1f ms per %zu-token chunk\n",
              1000.0 / end.timings.decode_tokens_per_s, end.timings.decode_tokens_per_s, prefill_end.tokens_in,
              prefill_end.timings.prefill_ms, prefill_end.timings.prefill_ms / chunks, options.prefill_chunk);

  std::vector<double> decode, prefill;
  for (int i = 0; i < runs; ++i) decode.push_back(one(c, numbered("d", i), "Cancel me while decoding", 3));
  for (int i = 0; i < runs; ++i) prefill.push_back(one(c, numbered("p", i), long_prompt, 0));
  std::printf("cancel latency, CPU engine, tiny qwen2, prefill chunk %zu, %d-word prompt for prefill\n",
              options.prefill_chunk, prompt_words);
  report("during decode", decode);
  report("during prefill", prefill);
  return 0;
}
