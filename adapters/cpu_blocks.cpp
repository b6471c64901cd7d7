// CPU execution of the shared blocks. Buffers are [token][features] row-major fp32.
#include "adapters/cpu_blocks.hpp"

#include <algorithm>
#include <stdexcept>

#include "cpu/attention.hpp"
#include "cpu/ffn.hpp"
#include "cpu/norm.hpp"
#include "cpu/rope.hpp"
#include "cpu/thread_pool.hpp"

namespace worker::adapters {

namespace {

const float* bias_of(const tensor_ref& t, std::size_t offset = 0) {
  return t.present() ? t.f32() + offset : nullptr;
}

// y[t] = W·x[t] + bias (accumulate: y[t] += ...), with dense row strides.
void project(const cpu::weight_matrix& w, const float* x, std::size_t n_tokens, float* y, const float* bias,
             bool accumulate, const cpu_run_config& run, std::size_t y_stride = 0) {
  cpu::matmul_args a;
  a.w = &w;
  a.x = x;
  a.x_stride = w.cols;
  a.n_tokens = n_tokens;
  a.y = y;
  a.y_stride = y_stride ? y_stride : w.rows;
  a.bias = bias;
  a.accumulate = accumulate;
  a.rounding = run.rounding;
  cpu::matmul(a, run.pool);
}

}  // namespace

void cpu_trace_rows(const cpu_run_config& run, std::string_view name, const float* rows, std::size_t n_rows,
                    std::size_t width) {
  if (!run.trace) return;
  for (std::size_t r = 0; r < n_rows; ++r) (*run.trace)(name, run.layer, r, std::span(rows + r * width, width));
}

cpu::weight_matrix matrix_of(const tensor_ref& t, std::int64_t expert) {
  const auto rows = static_cast<std::size_t>(t.ne[1]);
  const auto cols = static_cast<std::size_t>(t.ne[0]);
  cpu::weight_matrix w = cpu::make_weight_matrix(t.type, t.data, rows, cols);
  if (expert >= 0) {
    if (expert >= t.ne[2]) throw std::out_of_range("expert index out of range for " + t.name);
    w.data += static_cast<std::size_t>(expert) * rows * w.row_bytes;
  }
  return w;
}

void cpu_attention_forward(const attention_block& b, float norm_eps, float* h, std::size_t n_tokens,
                           std::size_t d_model, const std::vector<cpu_token_kv>& kv, const cpu_run_config& run) {
  const cpu::attention_params ap = [&] {
    cpu::attention_params p = b.attn;
    p.sinks = b.sinks.present() ? b.sinks.f32() : nullptr;
    return p;
  }();
  const std::size_t hd = ap.head_dim;
  const std::size_t width_q = std::size_t{ap.n_head} * hd;
  const std::size_t width_kv = std::size_t{ap.n_head_kv} * hd;

  std::vector<float> a(n_tokens * d_model);
  cpu::rmsnorm_rows({d_model, norm_eps}, h, b.norm.f32(), a.data(), n_tokens, d_model);

  std::vector<float> q(n_tokens * width_q), k(n_tokens * width_kv), v(n_tokens * width_kv);
  project(matrix_of(b.wq), a.data(), n_tokens, q.data(), bias_of(b.bq), false, run);
  project(matrix_of(b.wk), a.data(), n_tokens, k.data(), bias_of(b.bk), false, run);
  project(matrix_of(b.wv), a.data(), n_tokens, v.data(), bias_of(b.bv), false, run);

  // RoPE on Q and K (after the biases), then store K and V at each token's position.
  std::vector<float> cos_v(b.rope.n_dims / 2), sin_v(b.rope.n_dims / 2);
  std::int64_t max_pos = 0;
  for (std::size_t t = 0; t < n_tokens; ++t) {
    cpu::rope_angles(b.rope, kv[t].pos, cos_v.data(), sin_v.data());
    cpu::rope_apply(b.rope, cos_v.data(), sin_v.data(), q.data() + t * width_q, ap.n_head, hd);
    cpu::rope_apply(b.rope, cos_v.data(), sin_v.data(), k.data() + t * width_kv, ap.n_head_kv, hd);
    const auto row = static_cast<std::size_t>(kv[t].pos) * width_kv;
    std::copy_n(k.data() + t * width_kv, width_kv, kv[t].k + row);
    std::copy_n(v.data() + t * width_kv, width_kv, kv[t].v + row);
    max_pos = std::max(max_pos, kv[t].pos);
  }

  // One (token, head) pair per work item; each reads only its own sequence's cache.
  std::vector<float> o(n_tokens * width_q);
  const std::size_t n_items = n_tokens * ap.n_head;
  const std::size_t keys_max = static_cast<std::size_t>(max_pos) + 1;
  auto heads = [&](std::size_t begin, std::size_t end) {
    std::vector<float> scratch(keys_max);
    for (std::size_t i = begin; i < end; ++i) {
      const std::size_t t = i / ap.n_head;
      const auto head = static_cast<std::uint32_t>(i % ap.n_head);
      const cpu::kv_view view{kv[t].k, kv[t].v, width_kv};
      cpu::attention_head(ap, head, q.data() + t * width_q + head * hd, kv[t].pos, view,
                          o.data() + t * width_q + head * hd, scratch.data());
    }
  };
  const std::size_t work_per_item = keys_max * hd * 2;
  if (run.pool) {
    run.pool->parallel_for(n_items, heads, std::max<std::size_t>(1, 32768 / std::max<std::size_t>(1, work_per_item)));
  } else {
    heads(0, n_items);
  }

  cpu_trace_rows(run, "attn_out", o.data(), n_tokens, width_q);
  project(matrix_of(b.wo), o.data(), n_tokens, h, bias_of(b.bo), true, run, d_model);
}

void cpu_dense_ffn_forward(const dense_ffn_block& b, float norm_eps, float* h, std::size_t n_tokens,
                           std::size_t d_model, const cpu_run_config& run) {
  const std::size_t n_ff = b.n_ff;
  cpu_trace_rows(run, "ffn_inp", h, n_tokens, d_model);
  std::vector<float> f(n_tokens * d_model);
  cpu::rmsnorm_rows({d_model, norm_eps}, h, b.norm.f32(), f.data(), n_tokens, d_model);
  cpu_trace_rows(run, "ffn_norm", f.data(), n_tokens, d_model);
  std::vector<float> g(n_tokens * n_ff), u(n_tokens * n_ff);
  project(matrix_of(b.gate), f.data(), n_tokens, g.data(), nullptr, false, run);
  project(matrix_of(b.up), f.data(), n_tokens, u.data(), nullptr, false, run);
  cpu_trace_rows(run, "ffn_gate", g.data(), n_tokens, n_ff);
  cpu_trace_rows(run, "ffn_up", u.data(), n_tokens, n_ff);
  cpu::swiglu(g.data(), u.data(), g.data(), n_tokens * n_ff);
  cpu_trace_rows(run, "ffn_swiglu", g.data(), n_tokens, n_ff);
  project(matrix_of(b.down), g.data(), n_tokens, h, nullptr, true, run, d_model);
}

void cpu_moe_ffn_forward(const moe_ffn_block& b, float norm_eps, float* h, std::size_t n_tokens,
                         std::size_t d_model, const cpu_run_config& run) {
  const std::size_t n_expert = b.route.n_expert;
  const std::size_t k = b.route.n_used;
  const std::size_t n_ff = b.n_ff;

  std::vector<float> f(n_tokens * d_model);
  cpu::rmsnorm_rows({d_model, norm_eps}, h, b.norm.f32(), f.data(), n_tokens, d_model);

  // Routing: logits [T, X] -> k experts and weights per token.
  std::vector<float> logits(n_tokens * n_expert);
  project(matrix_of(b.router), f.data(), n_tokens, logits.data(), bias_of(b.router_bias), false, run);
  cpu_trace_rows(run, "ffn_moe_logits", logits.data(), n_tokens, n_expert);
  std::vector<std::uint32_t> chosen(n_tokens * k);
  std::vector<float> weights(n_tokens * k);
  for (std::size_t t = 0; t < n_tokens; ++t) {
    cpu::moe_route(b.route, logits.data() + t * n_expert, chosen.data() + t * k, weights.data() + t * k);
  }

  // Per expert: gather its tokens, run gate/up/act/down on them, keep each result at (token, rank).
  std::vector<float> expert_out(n_tokens * k * d_model);
  std::vector<std::size_t> members;  // (token·k + rank) entries routed to the current expert
  std::vector<float> x, g, u;
  for (std::size_t e = 0; e < n_expert; ++e) {
    members.clear();
    for (std::size_t i = 0; i < n_tokens * k; ++i) {
      if (chosen[i] == e) members.push_back(i);
    }
    if (members.empty()) continue;
    const std::size_t n = members.size();
    x.resize(n * d_model);
    for (std::size_t j = 0; j < n; ++j) std::copy_n(f.data() + (members[j] / k) * d_model, d_model, x.data() + j * d_model);
    g.resize(n * n_ff);
    u.resize(n * n_ff);
    const auto ei = static_cast<std::int64_t>(e);
    project(matrix_of(b.gate_exps, ei), x.data(), n, g.data(), bias_of(b.gate_bias, e * n_ff), false, run);
    project(matrix_of(b.up_exps, ei), x.data(), n, u.data(), bias_of(b.up_bias, e * n_ff), false, run);
    if (b.activation == ffn_activation::swiglu_oai) {
      cpu::swiglu_oai(b.oai, g.data(), u.data(), g.data(), n * n_ff);
    } else {
      cpu::swiglu(g.data(), u.data(), g.data(), n * n_ff);
    }
    x.resize(n * d_model);
    project(matrix_of(b.down_exps, ei), g.data(), n, x.data(), bias_of(b.down_bias, e * d_model), false, run);
    for (std::size_t j = 0; j < n; ++j) std::copy_n(x.data() + j * d_model, d_model, expert_out.data() + members[j] * d_model);
  }

  // Weighted sum in rank order (the order of the top-k selection), added to the residual.
  for (std::size_t t = 0; t < n_tokens; ++t) {
    float* dst = h + t * d_model;
    for (std::size_t i = 0; i < d_model; ++i) {
      float acc = weights[t * k] * expert_out[(t * k) * d_model + i];
      for (std::size_t r = 1; r < k; ++r) acc += weights[t * k + r] * expert_out[(t * k + r) * d_model + i];
      dst[i] += acc;
    }
  }
}

void cpu_logits_forward(const decoder_model& m, const float* h, const std::vector<std::size_t>& rows,
                        float* logits, const cpu_run_config& run) {
  const std::size_t d = m.d_model;
  std::vector<float> x(rows.size() * d);
  for (std::size_t r = 0; r < rows.size(); ++r) {
    cpu::rmsnorm({d, m.norm_eps}, h + rows[r] * d, m.output_norm.f32(), x.data() + r * d);
  }
  project(matrix_of(m.output), x.data(), rows.size(), logits, nullptr, false, run);
}

}  // namespace worker::adapters
