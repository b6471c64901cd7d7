// `worker-orcd bench --model FILE --device cuda:N [--prompt-tokens 512] [--gen-tokens 128]
//  [--batch 1,4,16] [--json]`: load, prefill and decode performance of the CUDA engine on one card.
//
// Reports, all measured in this run: the card; pinned host→device and device→device copy bandwidth
// (the D2D figure, bytes read + written per second, is the ceiling decode is held against); the launch
// latency floors (gpu/launch_latency.cuh: per dependent graph node, per grid-wide barrier); load time
// and GB/s; prefill tokens/s and time to first token for one prompt; per batch size, decode tokens/s
// (greedy, sampled on the GPU), bytes of weights + KV read per step and the achieved fraction of the
// D2D ceiling; VRAM used. Prompts are seeded random token ids (the weights are random too).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/cuda_engine.hpp"
#include "model/comma_list.hpp"
#include "model/gguf.hpp"
#include "tools/commands.hpp"

#if WORKER_ORCD_HAVE_CUDA
#include "gpu/bandwidth.hpp"
#include "gpu/block_trace.hpp"
#include "gpu/device.hpp"
#include "gpu/gpu_error.hpp"
#include "gpu/launch_latency.cuh"
#include "gpu/matvec.cuh"
#endif

namespace worker::tools {

namespace {

using clock_type = std::chrono::steady_clock;
double seconds_since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

constexpr const char* k_usage =
    "usage: worker-orcd bench --model FILE --device cuda:N [options]\n"
    "  --prompt-tokens N   prompt length for prefill and before decoding (default 512)\n"
    "  --gen-tokens N      decode steps timed per batch size (default 128)\n"
    "  --batch LIST        decode batch sizes, comma-separated, each 1..16 (default 1,4,16)\n"
    "  --context N         engine context limit (default: prompt + gen + 64)\n"
    "  --no-graphs         launch the decode kernels directly instead of replaying CUDA graphs\n"
    "  --matvec-variant S  decode matvec tuning switches (gpu/matvec.cuh set_matvec_variant), e.g. staged,s6\n"
    "  --json              print one JSON object on stdout (the text report goes to stderr)\n"
    "  --block-trace FILE  after the first batch size's timed steps, record the block timelines of two more\n"
    "                      decode steps to FILE as CSV (a build configured with -DWORKER_ORCD_BLOCK_TRACE=ON)\n";

struct options {
  std::string model;
  std::string device = "cuda:0";
  std::uint32_t prompt = 512, gen = 128, context = 0;
  std::vector<std::uint32_t> batches = {1, 4, 16};
  std::string matvec_variant;
  std::string block_trace;
  bool json = false, graphs = true;
};

bool parse(command_args args, options& o) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument(std::string(a) + " needs a value");
      return std::string(args[++i]);
    };
    if (a == "--model") o.model = value();
    else if (a == "--device") o.device = value();
    else if (a == "--prompt-tokens") o.prompt = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--gen-tokens") o.gen = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--context") o.context = static_cast<std::uint32_t>(std::stoul(value()));
    else if (a == "--json") o.json = true;
    else if (a == "--no-graphs") o.graphs = false;
    else if (a == "--matvec-variant") o.matvec_variant = value();
    else if (a == "--block-trace") o.block_trace = value();
    else if (a == "--batch") {
      o.batches.clear();
      for (const std::string& item : model::split_comma_list(value())) {
        const auto b = static_cast<std::uint32_t>(std::stoul(item));
        if (b < 1 || b > 16) throw std::invalid_argument("batch sizes must be 1..16");
        o.batches.push_back(b);
      }
      if (o.batches.empty()) throw std::invalid_argument("--batch needs at least one batch size");
    } else if (a == "--help" || a == "-h") {
      std::fputs(k_usage, stdout);
      return false;
    } else {
      throw std::invalid_argument("unknown option " + std::string(a));
    }
  }
  if (o.model.empty()) throw std::invalid_argument("--model is required");
  if (o.prompt < 1 || o.gen < 1) throw std::invalid_argument("--prompt-tokens and --gen-tokens must be positive");
  return true;
}

[[maybe_unused]] std::vector<adapters::token_id> random_tokens(std::size_t n, std::uint64_t seed, std::uint32_t vocab) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::uint32_t> d(0, std::min<std::uint32_t>(vocab, 151643) - 1);
  std::vector<adapters::token_id> v(n);
  for (auto& t : v) t = static_cast<adapters::token_id>(d(rng));
  return v;
}

// Reads the file once with several threads so the load below runs from the page cache.
[[maybe_unused]] double warm_page_cache(const std::string& path) {
  const auto t0 = clock_type::now();
  std::ifstream probe(path, std::ios::binary | std::ios::ate);
  const auto size = static_cast<std::uint64_t>(probe.tellg());
  const unsigned n = 8;
  std::vector<std::thread> th;
  for (unsigned k = 0; k < n; ++k) {
    th.emplace_back([&, k] {
      std::ifstream f(path, std::ios::binary);
      std::vector<char> buf(8 << 20);
      const std::uint64_t per = (size + n - 1) / n, b = k * per, e = std::min(size, b + per);
      f.seekg(static_cast<std::streamoff>(b));
      for (std::uint64_t p = b; p < e;) {
        const auto want = static_cast<std::streamsize>(std::min<std::uint64_t>(buf.size(), e - p));
        f.read(buf.data(), want);
        if (f.gcount() <= 0) break;
        p += static_cast<std::uint64_t>(f.gcount());
      }
    });
  }
  for (auto& t : th) t.join();
  const double s = seconds_since(t0);
  return s > 0 ? static_cast<double>(size) / s / 1e9 : 0.0;
}

}  // namespace

int cmd_bench(command_args args) {
  options o;
  try {
    if (!parse(args, o)) return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker-orcd bench: %s\n%s", e.what(), k_usage);
    return 2;
  }
#if !WORKER_ORCD_HAVE_CUDA
  std::fprintf(stderr, "worker-orcd bench: this build has no CUDA backend\n");
  return 2;
#else
  const int dev = gpu::parse_cuda_device(o.device);
  if (dev < 0) {
    std::fprintf(stderr, "worker-orcd bench: --device must be cuda:N (the CPU engine is not benchmarked here)\n");
    return 2;
  }
  using nlohmann::json;
  json out;
  // With --json the human-readable lines go to stderr and stdout carries only the JSON object.
  auto say = [&](const char* fmt, auto... v) {
    std::fprintf(o.json ? stderr : stdout, fmt, v...);
    std::fflush(o.json ? stderr : stdout);
  };
  const std::uint32_t max_batch = *std::max_element(o.batches.begin(), o.batches.end());
  const std::uint32_t ctx = o.context ? o.context : o.prompt + o.gen + 64;

  WORKER_CUDA_CHECK(cudaSetDevice(dev));
  if (!o.matvec_variant.empty()) gpu::set_matvec_variant(o.matvec_variant);
  out["matvec_variant"] = o.matvec_variant;
  const gpu::device_info card = gpu::query_device(dev);
  const auto d2d = gpu::measure_d2d_bandwidth(std::size_t{2} << 30, 10);
  const auto h2d = gpu::measure_h2d_bandwidth(std::size_t{1} << 30, 5);
  const double page_cache_gbs = warm_page_cache(o.model);
  say("card            %s (%d SMs, %.1f GiB)\n", card.name.c_str(), card.sm_count, card.total_bytes / 1073741824.0);
  say("copy bandwidth  device->device %.0f GB/s (read+write), pinned host->device %.1f GB/s, file read %.1f GB/s\n",
      d2d.gb_per_s, h2d.gb_per_s, page_cache_gbs);
  out["card"] = card.name;
  out["d2d_copy_gb_per_s"] = d2d.gb_per_s;
  out["h2d_pinned_gb_per_s"] = h2d.gb_per_s;
  out["file_read_gb_per_s"] = page_cache_gbs;
  const auto lat = gpu::measure_launch_latency();
  say("launch latency  %.2f us per dependent graph node, %.2f us with programmatic dependent launch; %.2f us per "
      "grid-wide barrier\n",
      lat.graph_node_us, lat.graph_node_pdl_us, lat.grid_barrier_us);
  out["graph_node_us"] = lat.graph_node_us;
  out["graph_node_pdl_us"] = lat.graph_node_pdl_us;
  out["grid_barrier_us"] = lat.grid_barrier_us;

  adapters::cuda_engine_options eo;
  eo.device = dev;
  eo.max_context = ctx;
  eo.max_sequences = max_batch + 1;
  eo.cuda_graphs = o.graphs;
  eo.kv_plan_bytes = 0;
  const auto t_open = clock_type::now();
  auto engine = adapters::open_cuda_engine(o.model, eo);
  const double open_s = seconds_since(t_open);
  const auto& lr = engine->load_report();
  const auto& sm = engine->summary();
  say("model           %s, %s, %.2f GiB of weights\n", sm.name.c_str(), sm.quantization.c_str(), lr.file_bytes / 1073741824.0);
  say("load            %.2f s weights (%.2f GB/s), %.2f s engine open in total\n", lr.seconds, lr.gb_per_s, open_s);
  out["model"] = sm.name;
  out["quantization"] = sm.quantization;
  out["weight_bytes"] = lr.file_bytes;
  out["load_seconds"] = lr.seconds;
  out["load_gb_per_s"] = lr.gb_per_s;
  out["open_seconds"] = open_s;

  const auto prompt = random_tokens(o.prompt, 42, sm.vocab_size);
  // Prefill: one warm-up (cuBLAS and kernel first-use costs), then the timed run; TTFT adds the choice of
  // the first token (greedy, on the host from the returned logits).
  {
    auto s = engine->open_sequence(o.prompt + 1);
    const adapters::forward_item it{s, prompt, false};
    engine->forward(std::span(&it, 1));
    engine->close_sequence(s);
  }
  auto s = engine->open_sequence(o.prompt + o.gen + 1);
  const auto t_pre = clock_type::now();
  const adapters::forward_item it{s, prompt, false};
  auto first = engine->forward(std::span(&it, 1));
  const double prefill_s = seconds_since(t_pre);
  const auto first_token = static_cast<adapters::token_id>(
      std::max_element(first[0].logits.begin(), first[0].logits.end()) - first[0].logits.begin());
  const double ttft_s = seconds_since(t_pre);
  engine->close_sequence(s);
  (void)first_token;
  say("prefill         %u tokens in %.1f ms: %.0f tokens/s; time to first token %.1f ms\n", o.prompt, prefill_s * 1e3,
      o.prompt / prefill_s, ttft_s * 1e3);
  out["prefill_tokens"] = o.prompt;
  out["prefill_tokens_per_s"] = o.prompt / prefill_s;
  out["ttft_ms"] = ttft_s * 1e3;

  json decode = json::array();
  for (const std::uint32_t b : o.batches) {
    std::vector<adapters::sequence_handle> seqs;
    std::vector<std::vector<adapters::token_id>> hist;
    for (std::uint32_t j = 0; j < b; ++j) {
      seqs.push_back(engine->open_sequence(o.prompt + o.gen + 4));  // + the step drained + 2 of --block-trace
      hist.push_back(random_tokens(o.prompt, 1000 + j, sm.vocab_size));
      const adapters::forward_item pf{seqs.back(), hist.back(), false};
      const auto lg = engine->forward(std::span(&pf, 1));
      hist.back().push_back(static_cast<adapters::token_id>(
          std::max_element(lg[0].logits.begin(), lg[0].logits.end()) - lg[0].logits.begin()));
    }
    adapters::sampling_params greedy;
    greedy.temperature = 0.0f;
    // Decode is pipelined as the worker runs it (actors/inference_core.cpp): the step after the one in
    // flight is enqueued, its input tokens those the step in flight samples (left on the device),
    // before the host reads the step in flight's tokens — so the host's turn-around overlaps the GPU.
    std::optional<adapters::decode_ticket> in_flight;
    auto enqueue = [&](bool from_previous) {
      std::vector<adapters::cuda_sample_item> items;
      for (std::uint32_t j = 0; j < b; ++j) items.push_back({seqs[j], hist[j].back(), from_previous, greedy, hist[j]});
      return engine->decode_enqueue(items);
    };
    auto step = [&] {  // one step's tokens read back
      if (!in_flight) in_flight = enqueue(false);
      const adapters::decode_ticket next = enqueue(true);
      const auto toks = engine->decode_collect(*in_flight);
      for (std::uint32_t j = 0; j < b; ++j) hist[j].push_back(toks[j]);
      in_flight = next;
    };
    auto drain = [&] {  // the step in flight's tokens (the caller keeps them)
      if (!in_flight) return;
      const auto toks = engine->decode_collect(*in_flight);
      for (std::uint32_t j = 0; j < b; ++j) hist[j].push_back(toks[j]);
      in_flight.reset();
    };
    step();  // warm-up: captures this batch size's CUDA graph
    const std::uint32_t steps = o.gen - 1;
    // Bytes per step at the middle of the timed steps (the KV part grows by one position per step).
    std::uint64_t bytes_mid = 0;
    const auto t_dec = clock_type::now();
    for (std::uint32_t i = 0; i < steps; ++i) {
      if (i == steps / 2) bytes_mid = engine->decode_bytes_per_step(seqs);
      step();
    }
    const double dec_s = seconds_since(t_dec);
    drain();
    if (!o.block_trace.empty() && b == o.batches.front()) {
      // Two more steps with the block timelines recorded (the timing above ran without them), one at a
      // time: scripts/block-trace-summary.py tells steps apart by the idle gap between them.
      gpu::block_trace_start(std::size_t{1} << 21);
      for (int k = 0; k < 2; ++k) {
        std::vector<adapters::cuda_sample_item> items;
        for (std::uint32_t j = 0; j < b; ++j) items.push_back({seqs[j], hist[j].back(), false, greedy, hist[j]});
        const auto toks = engine->decode_sample(items);
        for (std::uint32_t j = 0; j < b; ++j) hist[j].push_back(toks[j]);
      }
      const auto records = gpu::block_trace_stop();
      std::ofstream csv(o.block_trace);
      csv << "kernel,grid,block,smid,start_ns,wait_ns,end_ns\n";
      for (const gpu::block_trace_record& r : records)
        csv << gpu::block_trace_kernel_name(r.kernel) << ',' << r.grid << ',' << r.block << ',' << r.smid << ','
            << r.start_ns << ',' << r.wait_ns << ',' << r.end_ns << '\n';
      say("block trace: %zu records of two decode steps at batch %u to %s\n", records.size(), b, o.block_trace.c_str());
    }
    if (bytes_mid == 0) bytes_mid = engine->decode_bytes_per_step(seqs);
    const double steps_per_s = steps / dec_s;
    const double achieved = static_cast<double>(bytes_mid) * steps_per_s / 1e9;
    const double ceiling_tok_s = d2d.gb_per_s * 1e9 / static_cast<double>(bytes_mid) * b;
    say("decode b=%-2u     %.1f tokens/s (%.1f steps/s, %.3f ms/step); %.2f GB read per step, %.0f GB/s = %.0f%% of the copy "
        "bandwidth (ceiling %.0f tokens/s)\n",
        b, steps_per_s * b, steps_per_s, 1e3 / steps_per_s, bytes_mid / 1e9, achieved, 100.0 * achieved / d2d.gb_per_s,
        ceiling_tok_s);
    decode.push_back({{"batch", b},
                      {"tokens_per_s", steps_per_s * b},
                      {"ms_per_step", 1e3 / steps_per_s},
                      {"bytes_per_step", bytes_mid},
                      {"achieved_gb_per_s", achieved},
                      {"fraction_of_copy_bandwidth", achieved / d2d.gb_per_s},
                      {"ceiling_tokens_per_s", ceiling_tok_s}});
    for (auto q : seqs) engine->close_sequence(q);
  }
  out["decode"] = decode;
  const auto mem = gpu::device_memory();
  say("vram            %.2f GiB held by the engine, %.2f GiB in use on the card\n", engine->vram_bytes() / 1073741824.0,
      (mem.total_bytes - mem.free_bytes) / 1073741824.0);
  out["engine_vram_bytes"] = engine->vram_bytes();
  out["card_vram_used_bytes"] = mem.total_bytes - mem.free_bytes;
  if (o.json) std::printf("%s\n", out.dump().c_str());
  return 0;
#endif
}

}  // namespace worker::tools
