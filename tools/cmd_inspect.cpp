// `worker-orcd inspect FILE [--ctx N] [--json]`: what a GGUF file holds and what it needs to run:
// architecture, hyperparameters, tensor types, tokenizer summary, VRAM for weights + KV cache.
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <map>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "model/gguf.hpp"
#include "model/hparams.hpp"
#include "tools/commands.hpp"

namespace worker::tools {
namespace {

using model::gguf_file;

constexpr const char* k_usage =
    "usage: worker-orcd inspect FILE [--ctx N] [--json]\n"
    "  FILE     a GGUF v3 model file\n"
    "  --ctx N  context length for the KV-cache estimate (default: the model's trained context)\n"
    "  --json   print one JSON object instead of text\n";

// llama.cpp's LlamaFileType names for general.file_type (gguf-py constants).
std::string file_type_name(std::uint64_t ft) {
  static const std::map<std::uint64_t, std::string> names = {
      {0, "ALL_F32"}, {1, "MOSTLY_F16"}, {2, "MOSTLY_Q4_0"}, {7, "MOSTLY_Q8_0"}, {8, "MOSTLY_Q5_0"},
      {15, "MOSTLY_Q4_K_M"}, {14, "MOSTLY_Q4_K_S"}, {17, "MOSTLY_Q5_K_M"}, {18, "MOSTLY_Q6_K"},
      {32, "MOSTLY_BF16"}, {38, "MOSTLY_MXFP4_MOE"}};
  const auto it = names.find(ft);
  return it == names.end() ? "type " + std::to_string(ft) : it->second;
}

nlohmann::json hparams_json(const model::model_hparams& hp) {
  const auto& b = model::base_of(hp);
  nlohmann::json j = {
      {"context_length", b.n_ctx_train}, {"embedding_length", b.n_embd}, {"block_count", b.n_layer},
      {"head_count", b.n_head},           {"head_count_kv", b.n_head_kv}, {"key_length", b.head_dim_k},
      {"value_length", b.head_dim_v},     {"rms_epsilon", b.rms_eps},     {"vocab_size", b.vocab_size},
      {"rope", {{"dimension_count", b.rope.n_rot},
                {"freq_base", b.rope.freq_base},
                {"scaling", std::string(model::to_string(b.rope.scaling))},
                {"freq_scale", b.rope.freq_scale},
                {"original_context_length", b.rope.n_ctx_orig},
                {"yarn_mscale", b.rope.yarn_mscale()}}}};
  if (const auto* q = std::get_if<model::qwen2_hparams>(&hp)) {
    j["feed_forward_length"] = q->n_ff;
  } else if (const auto* g = std::get_if<model::gpt_oss_hparams>(&hp)) {
    j["expert_count"] = g->n_expert;
    j["expert_used_count"] = g->n_expert_used;
    j["expert_feed_forward_length"] = g->n_ff_exp;
    j["sliding_window"] = g->n_swa;
    j["sliding_window_pattern"] = g->swa_pattern;
  }
  return j;
}

nlohmann::json tokenizer_json(const gguf_file& f) {
  nlohmann::json j = nlohmann::json::object();
  if (auto m = f.get_string("tokenizer.ggml.model")) j["model"] = std::string(*m);
  if (auto p = f.get_string("tokenizer.ggml.pre")) j["pre"] = std::string(*p);
  if (const auto* t = f.get_array("tokenizer.ggml.tokens")) j["tokens"] = t->items.size();
  if (const auto* m = f.get_array("tokenizer.ggml.merges")) j["merges"] = m->items.size();
  if (const auto* tt = f.get_array("tokenizer.ggml.token_type")) {
    std::map<std::string, std::size_t> counts;
    static const char* names[] = {"undefined", "normal", "unknown", "control", "user_defined", "unused", "byte"};
    for (const auto& v : tt->items) {
      const auto* i = std::get_if<std::int64_t>(&v);
      const auto* u = std::get_if<std::uint64_t>(&v);
      const long long id = i ? *i : (u ? static_cast<long long>(*u) : -1);
      counts[(id >= 0 && id <= 6) ? names[id] : "invalid"]++;
    }
    j["token_types"] = counts;
  }
  for (const char* k : {"bos_token_id", "eos_token_id", "padding_token_id"}) {
    if (auto v = f.get_uint(std::string("tokenizer.ggml.") + k)) j[k] = *v;
  }
  if (auto v = f.get_bool("tokenizer.ggml.add_bos_token")) j["add_bos_token"] = *v;
  j["has_chat_template"] = f.find("tokenizer.chat_template") != nullptr;
  return j;
}

}  // namespace

int cmd_inspect(command_args args) {
  std::string path;
  bool as_json = false;
  std::optional<std::uint64_t> ctx;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto a = args[i];
    if (a == "--help" || a == "-h") {
      std::fputs(k_usage, stdout);
      return 0;
    } else if (a == "--json") {
      as_json = true;
    } else if (a == "--ctx" && i + 1 < args.size()) {
      const std::string v(args[++i]);
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n == 0) {
        std::fprintf(stderr, "worker-orcd inspect: --ctx needs a positive integer, got '%s'\n", v.c_str());
        return 2;
      }
      ctx = n;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "worker-orcd inspect: unknown option '%.*s'\n%s", static_cast<int>(a.size()), a.data(), k_usage);
      return 2;
    } else if (path.empty()) {
      path = std::string(a);
    } else {
      std::fprintf(stderr, "worker-orcd inspect: one FILE only\n%s", k_usage);
      return 2;
    }
  }
  if (path.empty()) {
    std::fputs(k_usage, stderr);
    return 2;
  }

  gguf_file f = [&] {
    try {
      return gguf_file::open(path);
    } catch (const model::gguf_error& e) {
      std::fprintf(stderr, "worker-orcd inspect: %s: %s\n", path.c_str(), e.what());
      throw;
    }
  }();

  std::map<std::string, std::pair<std::size_t, std::uint64_t>> types;  // name -> (count, bytes)
  std::uint64_t weight_bytes = 0;
  for (const auto& t : f.tensors()) {
    auto& e = types[std::string(model::type_name(t.type))];
    e.first++;
    e.second += t.nbytes;
    weight_bytes += t.nbytes;
  }

  nlohmann::json out;
  out["file"] = path;
  out["file_size"] = f.file_size();
  out["gguf_version"] = f.version();
  out["alignment"] = f.alignment();
  out["tensor_count"] = f.tensors().size();
  out["metadata_count"] = f.metadata().size();
  if (auto n = f.get_string("general.name")) out["name"] = std::string(*n);
  if (auto ft = f.get_uint("general.file_type")) out["file_type"] = file_type_name(*ft);
  nlohmann::json hist = nlohmann::json::object();
  for (const auto& [name, e] : types) hist[name] = {{"count", e.first}, {"bytes", e.second}};
  out["tensor_types"] = hist;
  out["tokenizer"] = tokenizer_json(f);

  const auto arch = model::detect_architecture(f);  // throws with the supported list
  const model::model_hparams hp = model::read_hparams(f);
  const std::uint64_t n_ctx = ctx.value_or(model::base_of(hp).n_ctx_train);
  const std::uint64_t kv = model::kv_cache_bytes_f16(hp, n_ctx);
  out["architecture"] = std::string(model::to_string(arch));
  out["hparams"] = hparams_json(hp);
  out["vram"] = {{"weights_bytes", weight_bytes}, {"kv_cache_bytes", kv}, {"context", n_ctx},
                 {"total_bytes", weight_bytes + kv},
                 {"note", "weights as stored + f16 KV cache for one sequence; excludes activations/scratch"}};

  if (as_json) {
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  std::printf("file          %s (%s, GGUF v%u)\n", path.c_str(), model::format_bytes(f.file_size()).c_str(), f.version());
  std::printf("architecture  %s\n", out["architecture"].get<std::string>().c_str());
  if (out.contains("name")) std::printf("name          %s\n", out["name"].get<std::string>().c_str());
  if (out.contains("file_type")) std::printf("file type     %s\n", out["file_type"].get<std::string>().c_str());
  std::printf("tensors       %zu (metadata keys: %zu)\n", f.tensors().size(), f.metadata().size());
  for (const auto& [name, e] : types) {
    std::printf("  %-8s %5zu tensors  %s\n", name.c_str(), e.first, model::format_bytes(e.second).c_str());
  }
  std::printf("hyperparameters\n");
  for (const auto& [k, v] : out["hparams"].items()) {
    if (k == "rope") continue;
    std::printf("  %-28s %s\n", k.c_str(), v.dump().c_str());
  }
  for (const auto& [k, v] : out["hparams"]["rope"].items()) std::printf("  rope.%-23s %s\n", k.c_str(), v.dump().c_str());
  std::printf("tokenizer     %s\n", out["tokenizer"].dump().c_str());
  std::printf("VRAM at ctx %llu: weights %s + KV cache (f16, 1 sequence) %s = %s (+ activations)\n",
              static_cast<unsigned long long>(n_ctx), model::format_bytes(weight_bytes).c_str(),
              model::format_bytes(kv).c_str(), model::format_bytes(weight_bytes + kv).c_str());
  return 0;
}

}  // namespace worker::tools
