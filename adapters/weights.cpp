// Tensor lookup with shape checks for the architecture adapters.
#include "adapters/weights.hpp"

#include <cmath>

#include "model/gguf.hpp"

namespace worker::adapters {

namespace {

std::string shape_string(const std::array<std::int64_t, 4>& ne, std::uint32_t n_dims) {
  std::string s = "[";
  for (std::uint32_t i = 0; i < n_dims; ++i) {
    if (i) s += ", ";
    s += std::to_string(ne[i]);
  }
  return s + "]";
}

}  // namespace

tensor_ref tensor_binder::weight(const std::string& name, std::initializer_list<std::int64_t> ne,
                                 tensor_need need) const {
  const model::gguf_tensor_info* t = file_.find_tensor(name);
  if (!t) {
    if (need == tensor_need::optional) return tensor_ref{name, model::ggml_type::f32, {1, 1, 1, 1}, nullptr, 0};
    throw model::gguf_error(model::gguf_error_code::missing_tensor, name, 0, "required tensor is absent");
  }
  std::array<std::int64_t, 4> want{1, 1, 1, 1};
  std::uint32_t i = 0;
  for (const auto v : ne) want[i++] = v;
  if (want != t->ne) {
    throw model::gguf_error(model::gguf_error_code::bad_shape, name, t->info_offset,
                            "expected ne = " + shape_string(want, i) + ", file has " +
                                shape_string(t->ne, t->n_dims));
  }
  const auto bytes = file_.tensor_data(*t);
  return tensor_ref{name, t->type, t->ne, bytes.data(), bytes.size()};
}

tensor_ref tensor_binder::f32(const std::string& name, std::initializer_list<std::int64_t> ne,
                              tensor_need need) const {
  tensor_ref r = weight(name, ne, need);
  if (r.present() && r.type != model::ggml_type::f32) {
    throw model::gguf_error(model::gguf_error_code::bad_shape, name, file_.find_tensor(name)->info_offset,
                            "expected an F32 tensor, file has " + std::string(model::type_name(r.type)));
  }
  return r;
}

std::string layer_tensor_name(std::uint32_t layer, std::string_view suffix) {
  return "blk." + std::to_string(layer) + "." + std::string(suffix);
}

void require_equal_head_dims(const model::transformer_hparams& h, std::string_view arch) {
  if (h.head_dim_k != h.head_dim_v) {
    throw model::gguf_error(model::gguf_error_code::bad_shape, std::string(arch) + ".attention.value_length", 0,
                            "key and value head dimensions differ");
  }
}

decoder_model bind_decoder_io(const tensor_binder& b, const model::transformer_hparams& h, std::string architecture) {
  const std::int64_t E = h.n_embd, V = h.vocab_size;
  decoder_model m;
  m.architecture = std::move(architecture);
  m.n_vocab = h.vocab_size;
  m.d_model = h.n_embd;
  m.n_ctx_train = h.n_ctx_train;
  m.norm_eps = h.rms_eps;
  m.token_embd = b.weight("token_embd.weight", {E, V});
  m.output_norm = b.f32("output_norm.weight", {E});
  m.output = b.weight("output.weight", {E, V}, tensor_need::optional);
  if (!m.output.present()) m.output = m.token_embd;
  return m;
}

attention_block bind_attention(const tensor_binder& b, const model::transformer_hparams& h, std::uint32_t il,
                               output_bias bo, const cpu::rope_params& rope) {
  const std::int64_t E = h.n_embd;
  const std::int64_t Hq = std::int64_t{h.n_head} * h.head_dim_k;
  const std::int64_t Hkv = std::int64_t{h.n_head_kv} * h.head_dim_k;
  auto n = [il](const char* s) { return layer_tensor_name(il, s); };
  attention_block a;
  a.norm = b.f32(n("attn_norm.weight"), {E});
  a.wq = b.weight(n("attn_q.weight"), {E, Hq});
  a.bq = b.f32(n("attn_q.bias"), {Hq});
  a.wk = b.weight(n("attn_k.weight"), {E, Hkv});
  a.bk = b.f32(n("attn_k.bias"), {Hkv});
  a.wv = b.weight(n("attn_v.weight"), {E, Hkv});
  a.bv = b.f32(n("attn_v.bias"), {Hkv});
  a.wo = b.weight(n("attn_output.weight"), {Hq, E});
  if (bo == output_bias::required) a.bo = b.f32(n("attn_output.bias"), {E});
  a.attn.n_head = h.n_head;
  a.attn.n_head_kv = h.n_head_kv;
  a.attn.head_dim = h.head_dim_k;
  a.attn.scale = 1.0f / std::sqrt(static_cast<float>(h.head_dim_k));
  a.attn.window = 0;
  a.rope = rope;
  return a;
}

cpu::rope_params rope_from_hparams(const model::rope_params& hp) {
  cpu::rope_params r;
  r.n_dims = hp.n_rot;
  r.freq_base = hp.freq_base;
  r.style = cpu::rope_style::neox;
  r.freq_scale = hp.freq_scale;
  r.n_ctx_orig = hp.n_ctx_orig;
  r.beta_fast = hp.yarn_beta_fast;
  r.beta_slow = hp.yarn_beta_slow;
  r.ext_factor = hp.scaling == model::rope_scaling_type::yarn ? 1.0f : 0.0f;
  r.attn_factor = 1.0f;
  return r;
}

}  // namespace worker::adapters
