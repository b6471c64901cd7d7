// engine_eval: the CPU engine's side of the llama.cpp comparison (test-only tool, driven by
// tests/oracle/logits_compare.mjs). It reads the reference JSON that the node script computed with
// llama.cpp for one model file, runs the same token ids through our engine, and checks:
//   teacher forcing: at every position of every prompt, over llama.cpp's top-N tokens,
//                    max |our log-prob − llama.cpp's log-prob| <= tolerance, and our top-1 equals
//                    llama.cpp's wherever llama.cpp's top-1/top-2 log-prob margin exceeds eps
//                    ("decisive" positions);
//   greedy:          our greedy continuation (the real generation loop: prefill, then one-token decode
//                    steps and the sampler at temperature 0) equals llama.cpp's token for token, up to
//                    the first step where llama.cpp's margin is <= eps (a near-tie, reported).
//   emulation:       (--emulated-exact X --min-exact F) the same engine with llama.cpp's activation rounding
//                    (cpu/activation_rounding.hpp) must match llama.cpp within X at a fraction >= F of the
//                    positions ("exact" positions). Rounding is discontinuous, so wherever the two fp32
//                    accumulation orders put one value on the other side of a rounding boundary, the
//                    runs part by a whole quantum from there on (docs/accuracy.md); elsewhere they agree to
//                    ~1e-4, which a wrong block formula, scale or activation rule could not do.
// Exit 0 when everything holds; 1 when not. With --expect-mismatch (mutation check) the meaning flips:
// exit 0 only if the comparison FAILS.
//
// Reference JSON: {"prompts":[{"name", "tokens":[ids], "top":[[[id, logprob], ...] per position]}],
//                  "greedy":[{"name", "prompt":[ids], "tokens":[ids], "margins":[logprob gaps]}]}
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/cpu_engine.hpp"
#include "adapters/generation.hpp"
#include "adapters/sampler.hpp"
#include "model/gguf.hpp"

namespace {

using worker::adapters::token_id;

struct options {
  std::string model;
  std::string reference;
  std::string report;            // optional JSON report path
  double tolerance = 0.05;       // max |Δ log-prob| over llama.cpp's top-N
  double eps = 0.1;              // decisive: llama.cpp's top-2 margin > eps
  std::size_t top_n = 20;
  unsigned threads = 2;
  std::string mutation = "none";
  bool expect_mismatch = false;
  bool llama_rounding = false;   // emulate llama.cpp's activation rounding (cpu/activation_rounding.hpp)
  std::string rounding;          // --rounding MODE: the engine's activations rounded by a numerics study
                                 // mode (q8x2 | q8x1 | fp16 | llama; cpu/activation_rounding.hpp), against
                                 // a reference this tool wrote for the exact engine (--write-reference)
  std::string write_reference;   // diagnostics: write OUR top-40 in the reference format (same prompts)
  double route_eps = 0.0;        // MoE: a position whose k-th/(k+1)-th router logit gap is below this in
                                 // some layer is a routing near-tie (excluded from the tolerance check),
  std::size_t route_lookback = 2;  // and so are the next `route_lookback` positions, which attend to it
  double emulated_exact = 0.0;   // > 0: check the llama-rounded engine; a position within this is "exact"
  double min_exact = 0.0;        // fraction of positions that must be exact
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: engine_eval --model F --reference R.json [--tolerance T] [--eps E] [--top N]\n"
               "                   [--threads N] [--mutation NAME] [--expect-mismatch] [--llama-rounding]\n"
               "                   [--route-eps G] [--route-lookback N] [--emulated-exact X --min-exact F]\n"
               "                   [--report OUT.json] [--write-reference OUT] [--rounding q8x2|q8x1|fp16|llama]\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--model") o.model = value();
    else if (a == "--reference") o.reference = value();
    else if (a == "--report") o.report = value();
    else if (a == "--tolerance") o.tolerance = std::stod(value());
    else if (a == "--eps") o.eps = std::stod(value());
    else if (a == "--top") o.top_n = std::stoul(value());
    else if (a == "--threads") o.threads = static_cast<unsigned>(std::stoul(value()));
    else if (a == "--mutation") o.mutation = value();
    else if (a == "--expect-mismatch") o.expect_mismatch = true;
    else if (a == "--llama-rounding") o.llama_rounding = true;
    else if (a == "--rounding") o.rounding = value();
    else if (a == "--write-reference") o.write_reference = value();
    else if (a == "--route-eps") o.route_eps = std::stod(value());
    else if (a == "--route-lookback") o.route_lookback = std::stoul(value());
    else if (a == "--emulated-exact") o.emulated_exact = std::stod(value());
    else if (a == "--min-exact") o.min_exact = std::stod(value());
    else usage();
  }
  if (o.model.empty() || o.reference.empty()) usage();
  return o;
}

// log-softmax of one row, in double.
std::vector<double> log_softmax(const float* logits, std::size_t n) {
  double m = logits[0];
  for (std::size_t i = 1; i < n; ++i) m = std::max(m, static_cast<double>(logits[i]));
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - m);
  const double lse = m + std::log(sum);
  std::vector<double> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<double>(logits[i]) - lse;
  return out;
}

struct teacher_stats {
  std::size_t positions = 0;
  std::size_t decisive = 0;
  std::size_t top1_mismatch_decisive = 0;
  std::size_t top1_mismatch_near_tie = 0;
  double max_delta = 0.0;
  double sum_delta = 0.0;  // of per-position max deltas
  double max_rel_delta = 0.0;  // max |Δ (log p_i − log p_top1)|: differences not caused by the normalizer
  double sum_offset = 0.0;     // Σ (ours − llama.cpp) log p of llama.cpp's top-1: a systematic shift shows here
  double max_rounding_effect = 0.0;  // max |Δ log-prob| between our fp32 run and our llama.cpp-rounded run
  std::size_t route_ties = 0;        // positions excluded as MoE routing near-ties
  double route_tie_max_delta = 0.0;  // their largest deviation (for the report)
  std::size_t exact = 0;             // positions where the llama-rounded engine matches within emulated_exact
  double emulated_max_delta = 0.0;   // max |Δ log-prob| of the llama-rounded engine vs llama.cpp
  std::vector<double> emulated_per_position;
  std::size_t worst_position = 0;
  double worst_route_gap = 0.0;  // smallest router gap at the worst position (MoE only)
  std::vector<double> per_position;  // max delta per position
  std::vector<std::array<double, 3>> rows;  // per position: max delta, smallest router gap, llama.cpp margin

  // Folds one prompt's counts and maxima into a running summary (windows, or all teacher-forced prompts).
  void add(const teacher_stats& s) {
    positions += s.positions;
    decisive += s.decisive;
    top1_mismatch_decisive += s.top1_mismatch_decisive;
    top1_mismatch_near_tie += s.top1_mismatch_near_tie;
    route_ties += s.route_ties;
    max_delta = std::max(max_delta, s.max_delta);
    max_rounding_effect = std::max(max_rounding_effect, s.max_rounding_effect);
    exact += s.exact;
    emulated_max_delta = std::max(emulated_max_delta, s.emulated_max_delta);
    emulated_per_position.insert(emulated_per_position.end(), s.emulated_per_position.begin(),
                                 s.emulated_per_position.end());
  }
};

}  // namespace

int main(int argc, char** argv) try {
  const options o = parse(argc, argv);
  nlohmann::json ref;
  {
    std::ifstream in(o.reference);
    if (!in) throw std::runtime_error("cannot read " + o.reference);
    in >> ref;
  }

  worker::adapters::cpu_engine_options eo;
  eo.n_threads = o.threads;
  eo.max_sequences = 4;
  eo.max_context = 4096;
  eo.adapter.mutation = worker::adapters::adapter_mutation_from_string(o.mutation);
  if (o.llama_rounding) eo.rounding = worker::cpu::activation_rounding::llama_cpu;
  if (!o.rounding.empty()) {
    using worker::cpu::activation_rounding;
    if (o.rounding == "q8x2") eo.rounding = activation_rounding::q8_two_level;
    else if (o.rounding == "q8x1") eo.rounding = activation_rounding::q8_one_level;
    else if (o.rounding == "fp16") eo.rounding = activation_rounding::fp16;
    else if (o.rounding == "llama") eo.rounding = activation_rounding::llama_cpu;
    else usage();
  }
  // MoE models: record, per batch row, the smallest gap between the k-th and (k+1)-th router logit over
  // all layers. Top-k routing is discontinuous: where that gap is within the noise, llama.cpp may pick
  // another expert set and its output legitimately jumps.
  std::size_t experts_used = 0;
  {
    const auto file = worker::model::gguf_file::open(o.model);
    const auto arch = file.get_string("general.architecture").value_or("");
    experts_used = file.get_uint(std::string(arch) + ".expert_used_count").value_or(0);
  }
  std::vector<double> route_gap;  // per row of the current forward call
  // Router logits of the current prompt, (layer, row) -> values, from the fp32 and the rounded engine:
  // their largest difference is the router noise that llama.cpp-style activation rounding causes.
  std::map<std::pair<std::size_t, std::size_t>, std::vector<float>> router_exact, router_rounded;
  std::vector<double> router_shift;  // |Δ router logit| over every (layer, position, expert)
  if (experts_used > 0) {
    eo.trace = [&](std::string_view name, std::size_t layer, std::size_t row, std::span<const float> v) {
      if (name != "ffn_moe_logits") return;
      router_exact[{layer, row}].assign(v.begin(), v.end());
      std::vector<float> sorted(v.begin(), v.end());
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      const double gap = sorted[experts_used - 1] - sorted[experts_used];
      if (route_gap.size() <= row) route_gap.resize(row + 1, 1e9);
      route_gap[row] = std::min(route_gap[row], gap);
    };
  }
  auto engine = worker::adapters::open_cpu_engine(o.model, eo);
  eo.trace = nullptr;
  // The same model with activations rounded the way llama.cpp's CPU backend rounds them: how far that
  // alone moves our log-probs is the yardstick for the per-type tolerance (cpu/activation_rounding.hpp).
  std::unique_ptr<worker::adapters::engine> rounded;
  // (Not for an all-F32 file: llama.cpp rounds nothing there, and the second run would only cost time.)
  if (!o.llama_rounding && o.rounding.empty() && o.mutation == "none" && engine->summary().quantization != "F32") {
    auto ro = eo;
    ro.rounding = worker::cpu::activation_rounding::llama_cpu;
    if (experts_used > 0) {
      ro.trace = [&](std::string_view name, std::size_t layer, std::size_t row, std::span<const float> v) {
        if (name == "ffn_moe_logits") router_rounded[{layer, row}].assign(v.begin(), v.end());
      };
    }
    rounded = worker::adapters::open_cpu_engine(o.model, ro);
  }
  const std::size_t vocab = engine->summary().vocab_size;
  const std::string activations_label = o.llama_rounding    ? "rounded like llama.cpp"
                                         : o.rounding.empty() ? "fp32"
                                                              : "rounded: " + o.rounding;
  std::printf("engine_eval: %s (%s, %s), mutation %s, activations %s, tolerance %.4g, eps %.4g, top %zu\n",
              o.model.c_str(), engine->summary().architecture.c_str(), engine->summary().quantization.c_str(),
              o.mutation.c_str(), activations_label.c_str(), o.tolerance, o.eps, o.top_n);

  bool ok = true;
  nlohmann::json report = {{"model", o.model}, {"mutation", o.mutation}, {"tolerance", o.tolerance}, {"eps", o.eps}};
  teacher_stats total;

  // --- Teacher forcing ---------------------------------------------------------------------------
  // The long prompts, then the short windows (each from an empty cache; summarized, not printed one by one).
  std::vector<std::pair<const nlohmann::json*, bool>> sequences;  // (prompt, is_window)
  for (const auto& p : ref.at("prompts")) sequences.emplace_back(&p, false);
  if (ref.contains("windows")) {
    for (const auto& p : ref.at("windows")) sequences.emplace_back(&p, true);
  }
  teacher_stats windows;
  std::size_t n_windows = 0;
  for (const auto& [prompt, is_window] : sequences) {
    const auto& p = *prompt;
    const auto tokens = p.at("tokens").get<std::vector<token_id>>();
    const auto& top = p.at("top");
    if (top.size() != tokens.size()) throw std::runtime_error("reference: one top list per token expected");
    route_gap.assign(tokens.size(), 1e9);
    router_exact.clear();
    router_rounded.clear();
    auto seq = engine->open_sequence(static_cast<std::uint32_t>(tokens.size()));
    const worker::adapters::forward_item item{seq, tokens, true};
    const auto out = engine->forward(std::span(&item, 1));
    engine->close_sequence(seq);
    std::vector<worker::adapters::forward_output> out_rounded;
    if (rounded) {
      auto rs = rounded->open_sequence(static_cast<std::uint32_t>(tokens.size()));
      const worker::adapters::forward_item ritem{rs, tokens, true};
      out_rounded = rounded->forward(std::span(&ritem, 1));
      rounded->close_sequence(rs);
      for (const auto& [key, v] : router_exact) {
        const auto& r = router_rounded.at(key);
        for (std::size_t i = 0; i < v.size(); ++i) router_shift.push_back(std::abs(double(v[i]) - r[i]));
      }
    }

    teacher_stats s;
    nlohmann::json our_top = nlohmann::json::array();
    for (std::size_t pos = 0; pos < tokens.size(); ++pos) {
      const auto ours = log_softmax(out[0].logits.data() + pos * vocab, vocab);
      if (!o.write_reference.empty()) {
        std::vector<std::size_t> idx(vocab);
        for (std::size_t i = 0; i < vocab; ++i) idx[i] = i;
        std::partial_sort(idx.begin(), idx.begin() + 40, idx.end(), [&](std::size_t a, std::size_t b) { return ours[a] > ours[b]; });
        nlohmann::json row = nlohmann::json::array();
        for (std::size_t r = 0; r < 40; ++r) row.push_back({idx[r], ours[idx[r]]});
        our_top.push_back(row);
      }
      const auto& entries = top[pos];
      const std::size_t n = std::min(o.top_n, entries.size());
      double delta = 0.0;
      const auto id0 = entries[0].at(0).get<std::size_t>();
      const double lp0 = entries[0].at(1).get<double>();
      for (std::size_t r = 0; r < n; ++r) {
        const auto id = entries[r].at(0).get<std::size_t>();
        const double lp = entries[r].at(1).get<double>();
        delta = std::max(delta, std::abs(ours[id] - lp));
        // Normalizer-free view: log-prob relative to llama.cpp's top-1 token.
        s.max_rel_delta = std::max(s.max_rel_delta, std::abs((ours[id] - ours[id0]) - (lp - lp0)));
      }
      double rounding_effect = 0.0;  // how far llama-style rounding alone moves our log-probs here
      if (rounded) {
        const auto r = log_softmax(out_rounded[0].logits.data() + pos * vocab, vocab);
        double emulated_delta = 0.0;
        for (std::size_t k = 0; k < n; ++k) {
          const auto id = entries[k].at(0).get<std::size_t>();
          rounding_effect = std::max(rounding_effect, std::abs(r[id] - ours[id]));
          emulated_delta = std::max(emulated_delta, std::abs(r[id] - entries[k].at(1).get<double>()));
        }
        s.emulated_max_delta = std::max(s.emulated_max_delta, emulated_delta);
        s.emulated_per_position.push_back(emulated_delta);
        if (o.emulated_exact > 0.0 && emulated_delta <= o.emulated_exact) ++s.exact;
      }
      s.sum_offset += ours[id0] - lp0;
      const auto llama_top1 = entries[0].at(0).get<std::size_t>();
      const double margin = entries.size() > 1 ? entries[0].at(1).get<double>() - entries[1].at(1).get<double>() : 1e9;
      const auto our_top1 = static_cast<std::size_t>(std::max_element(ours.begin(), ours.end()) - ours.begin());
      ++s.positions;
      s.rows.push_back({delta, route_gap[pos], margin});
      double recent_gap = route_gap[pos];
      for (std::size_t back = 1; back <= o.route_lookback && back <= pos; ++back) {
        recent_gap = std::min(recent_gap, route_gap[pos - back]);
      }
      if (recent_gap < o.route_eps) {
        // Routing near-tie: reported, not held to the tolerance or the top-1 check (and not counted in the
        // rounding sensitivity, which is the yardstick for that tolerance).
        ++s.route_ties;
        s.route_tie_max_delta = std::max(s.route_tie_max_delta, delta);
        s.per_position.push_back(delta);
        continue;
      }
      s.max_rounding_effect = std::max(s.max_rounding_effect, rounding_effect);
      if (margin > o.eps) {
        ++s.decisive;
        if (our_top1 != llama_top1) ++s.top1_mismatch_decisive;
      } else if (our_top1 != llama_top1) {
        ++s.top1_mismatch_near_tie;
      }
      if (delta > s.max_delta) s.max_delta = delta, s.worst_position = pos, s.worst_route_gap = route_gap[pos];
      s.sum_delta += delta;
      s.per_position.push_back(delta);
    }
    std::vector<double> sorted = s.per_position;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2];
    const bool pass = s.max_delta <= o.tolerance && s.top1_mismatch_decisive == 0;
    ok = ok && pass;
    if (is_window) {
      ++n_windows;
      windows.add(s);
      continue;
    }
    std::printf("  teacher %-10s %4zu positions, %4zu decisive, top-1 mismatches: %zu decisive / %zu near-tie; "
                "max|dlogp| %.5f (pos %zu%s), mean %.5f, median %.5f; relative-to-top1 max %.5f, mean offset %+.5f; "
                "own llama-style rounding moves us by max %.5f; routing near-ties %zu (max|dlogp| %.3f)  %s\n",
                p.at("name").get<std::string>().c_str(), s.positions, s.decisive, s.top1_mismatch_decisive,
                s.top1_mismatch_near_tie, s.max_delta, s.worst_position,
                experts_used ? (", router gap " + std::to_string(s.worst_route_gap)).c_str() : "", s.sum_delta / static_cast<double>(std::max<std::size_t>(1, s.positions - s.route_ties)),
                median, s.max_rel_delta, s.sum_offset / static_cast<double>(s.positions), s.max_rounding_effect,
                s.route_ties, s.route_tie_max_delta, pass ? "ok" : "FAIL");
    if (rounded && o.emulated_exact > 0.0) {
      std::vector<double> e = s.emulated_per_position;
      std::sort(e.begin(), e.end());
      std::printf("          %-10s llama-rounded engine vs llama.cpp: median %.5f, max %.5f; %zu/%zu positions "
                  "within %.4g (reported; the windows below are checked)\n",
                  "", e[e.size() / 2], s.emulated_max_delta, s.exact, s.positions, o.emulated_exact);
    }
    report["teacher"].push_back({{"name", p.at("name")},
                                 {"positions", s.positions},
                                 {"decisive", s.decisive},
                                 {"top1_mismatch_decisive", s.top1_mismatch_decisive},
                                 {"top1_mismatch_near_tie", s.top1_mismatch_near_tie},
                                 {"max_delta", s.max_delta},
                                 {"mean_delta", s.sum_delta / static_cast<double>(std::max<std::size_t>(1, s.positions - s.route_ties))},
                                 {"median_delta", median},
                                 {"own_rounding_effect", s.max_rounding_effect},
                                 {"emulated_max_delta", s.emulated_max_delta},
                                 {"emulated_exact_positions", s.exact},
                                 {"emulated_per_position", s.emulated_per_position},
                                 {"routing_near_ties", s.route_ties},
                                 {"routing_near_tie_max_delta", s.route_tie_max_delta},
                                 {"per_position", s.rows}});
    if (!o.write_reference.empty()) {
      report["own_reference"]["prompts"].push_back({{"name", p.at("name")}, {"tokens", tokens}, {"top", our_top}});
    }
    total.add(s);
  }

  if (o.emulated_exact > 0.0 && n_windows == 0) throw std::runtime_error("--emulated-exact needs windows in the reference");
  if (n_windows > 0) {
    const bool fp32_pass = windows.max_delta <= o.tolerance && windows.top1_mismatch_decisive == 0;
    std::printf("  windows   %3zu x short prompts, %zu positions, %zu decisive, top-1 mismatches: %zu decisive / %zu "
                "near-tie; max|dlogp| %.5f; llama-style rounding moves us by max %.5f; routing near-ties %zu  %s\n",
                n_windows, windows.positions, windows.decisive, windows.top1_mismatch_decisive,
                windows.top1_mismatch_near_tie, windows.max_delta, windows.max_rounding_effect, windows.route_ties,
                fp32_pass ? "ok" : "FAIL");
    report["windows"] = {{"count", n_windows},
                         {"positions", windows.positions},
                         {"decisive", windows.decisive},
                         {"top1_mismatch_decisive", windows.top1_mismatch_decisive},
                         {"max_delta", windows.max_delta},
                         {"own_rounding_effect", windows.max_rounding_effect},
                         {"routing_near_ties", windows.route_ties},
                         {"pass", fp32_pass}};
  }
  if (n_windows > 0 && rounded) {  // (no llama-rounded engine in a mutation run or with --llama-rounding)
    std::vector<double> e = windows.emulated_per_position;
    std::sort(e.begin(), e.end());
    const double fraction = static_cast<double>(windows.exact) / static_cast<double>(windows.positions);
    const bool pass = o.emulated_exact <= 0.0 || fraction >= o.min_exact;
    ok = ok && pass;
    std::printf("            llama-rounded engine vs llama.cpp: median %.5f, max %.5f; %zu/%zu positions exact "
                "(<= %.4g): %.0f%%, need %.0f%%  %s\n",
                e[e.size() / 2], windows.emulated_max_delta, windows.exact, windows.positions, o.emulated_exact,
                100.0 * fraction, 100.0 * o.min_exact, pass ? "ok" : "FAIL");
    report["windows"]["emulated_exact_positions"] = windows.exact;
    report["windows"]["emulated_median_delta"] = e[e.size() / 2];
    report["windows"]["emulated_max_delta"] = windows.emulated_max_delta;
    report["windows"]["emulated_pass"] = pass;
  }

  // --- Greedy generation -------------------------------------------------------------------------
  if (ref.contains("greedy")) {
    for (const auto& g : ref.at("greedy")) {
      worker::adapters::generation_request req;
      req.prompt = g.at("prompt").get<std::vector<token_id>>();
      const auto expected = g.at("tokens").get<std::vector<token_id>>();
      const auto margins = g.at("margins").get<std::vector<double>>();
      req.max_tokens = static_cast<std::uint32_t>(expected.size());
      req.sampling.temperature = 0.0f;
      const auto result = worker::adapters::generate(*engine, req);
      std::size_t same = 0;
      while (same < expected.size() && same < result.tokens.size() && result.tokens[same] == expected[same]) ++same;
      bool pass = same == expected.size();
      std::string note;
      if (!pass && same < margins.size() && margins[same] <= o.eps) {
        pass = true;  // diverged at a near-tie of llama.cpp's: the continuation after it is not comparable
        note = " (diverged at a near-tie, margin " + std::to_string(margins[same]) + ")";
      } else if (!pass) {
        note = " (diverged at step " + std::to_string(same) + ", llama.cpp margin " +
               (same < margins.size() ? std::to_string(margins[same]) : std::string("?")) + ")";
      }
      // Tie-aware pass over all steps: decode one token at a time along llama.cpp's continuation. Where our
      // greedy choice differs, llama.cpp's own margin must be <= eps (a near-tie); we then follow its token.
      std::size_t followed_ties = 0, decisive_mismatch = 0;
      {
        auto seq = engine->open_sequence(static_cast<std::uint32_t>(req.prompt.size() + expected.size()));
        worker::adapters::forward_item item{seq, req.prompt, false};
        auto out = engine->forward(std::span(&item, 1));
        for (std::size_t step = 0; step < expected.size(); ++step) {
          const token_id ours = worker::adapters::argmax(out[0].logits);
          if (ours != expected[step]) {
            (margins[step] <= o.eps ? followed_ties : decisive_mismatch) += 1;
          }
          if (step + 1 == expected.size()) break;
          item.tokens = std::span(&expected[step], 1);
          out = engine->forward(std::span(&item, 1));
        }
        engine->close_sequence(seq);
      }
      pass = pass && decisive_mismatch == 0;
      ok = ok && pass;
      std::printf("  greedy  %-10s %zu/%zu tokens identical%s; along llama.cpp's tokens: %zu near-tie / %zu decisive "
                  "differences  %s\n",
                  g.at("name").get<std::string>().c_str(), same, expected.size(), note.c_str(), followed_ties,
                  decisive_mismatch, pass ? "ok" : "FAIL");
      report["greedy"].push_back({{"name", g.at("name")},
                                  {"identical", same},
                                  {"expected", expected.size()},
                                  {"near_tie_differences", followed_ties},
                                  {"decisive_differences", decisive_mismatch},
                                  {"pass", pass}});
    }
  }

  if (experts_used > 0 && !router_shift.empty()) {
    // Typical router noise (median, 90th percentile; the maximum is dominated by routing flips upstream).
    std::sort(router_shift.begin(), router_shift.end());
    const double median = router_shift[router_shift.size() / 2];
    const double p90 = router_shift[router_shift.size() * 9 / 10];
    std::printf("  router logits under llama-style activation rounding move by median %.4f, p90 %.4f "
                "(routing near-tie threshold %.4g)\n", median, p90, o.route_eps);
    report["router_shift_median"] = median;
    report["router_shift_p90"] = p90;
  }
  std::printf("  total: %zu positions, %zu decisive (eps %.3g), %zu decisive top-1 mismatches, %zu routing near-ties, "
              "max|dlogp| %.5f (tolerance %.4g); llama-style rounding moves us by max %.5f",
              total.positions, total.decisive, o.eps, total.top1_mismatch_decisive, total.route_ties, total.max_delta,
              o.tolerance, total.max_rounding_effect);
  if (rounded && o.emulated_exact > 0.0) {
    std::printf("; llama-rounded engine: %zu/%zu positions exact, max %.5f", total.exact, total.positions,
                total.emulated_max_delta);
  }
  std::printf("\n");
  report["total"] = {{"positions", total.positions},
                     {"decisive", total.decisive},
                     {"top1_mismatch_decisive", total.top1_mismatch_decisive},
                     {"routing_near_ties", total.route_ties},
                     {"max_delta", total.max_delta},
                     {"own_rounding_effect", total.max_rounding_effect},
                     {"emulated_exact_positions", total.exact},
                     {"emulated_max_delta", total.emulated_max_delta}};
  report["pass"] = ok;
  if (!o.write_reference.empty()) std::ofstream(o.write_reference) << report["own_reference"].dump() << "\n";
  if (!o.report.empty()) std::ofstream(o.report) << report.dump(1) << "\n";

  if (o.expect_mismatch) {
    std::printf("RESULT: mutation %s %s\n", o.mutation.c_str(), ok ? "NOT DETECTED (comparison still passes)" : "detected");
    return ok ? 1 : 0;
  }
  std::printf("RESULT: %s\n", ok ? "match" : "MISMATCH");
  return ok ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "engine_eval: error: %s\n", e.what());
  return 2;
}
