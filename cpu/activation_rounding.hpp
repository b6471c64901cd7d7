// Optional emulation of how llama.cpp's CPU backend rounds the ACTIVATIONS of a matmul before the dot
// product, for the engine comparison only. Our reference keeps activations in fp32; ggml first converts
// the activation row to the weight type's "vec_dot type" (ggml-cpu.c type traits):
//   F32 -> F32 (unchanged)          F16 -> F16 (round to nearest even)     BF16 -> BF16 (nearest even)
//   Q4_0, Q5_0, Q8_0, MXFP4 -> Q8_0: per 32 values, d = amax/127, q = round-half-even(x·127/amax),
//                                    value = fp16(d)·q
//   Q4_K, Q5_K, Q6_K -> Q8_K:        per 256 values, m = the value of largest magnitude (signed),
//                                    s = -127/m, q = min(127, round-half-even(s·x)), value = q/s
// Applies where the oracle runs llama.cpp: CPU backend, F32 KV cache, flash attention off (so attention
// itself stays fp32 there; an F16 cache or flash attention would round Q, K, V and the softmax too, which
// this does not model). The repacked CPU kernels (Q4_0/Q4_K/MXFP4 on AVX2) quantize activations by the
// same rules. Test/reference only (cpu_engine_options::rounding, engine_eval); production never enables it.
// Verified against llama.cpp's own intermediates (docs/accuracy.md): with it, a layer's output matches
// llama.cpp to fp32 accuracy (~1e-7 relative) in every row except where one rounding went the other way
// because the two fp32 sums feeding it differ in the last bit; such a flip moves its row by a whole
// quantum and spreads to later rows through attention. Short sequences therefore match to ~1e-4 in
// log-probs at most positions, long ones part after the first flip.
#pragma once

#include <cstddef>

#include "model/ggml_type.hpp"

namespace worker::cpu {

enum class activation_rounding {
  exact,      // fp32 activations (the reference)
  llama_cpu,  // round like llama.cpp's CPU backend for the weight's type (see above)
  // Numerics studies of GPU decode designs (engine_eval --rounding; every weight type but F32 alike):
  q8_two_level,  // the CUDA decode matvecs' two-level int8 blocks of 32 (gpu/q8_act.cuh): d_hi·q_hi + d_lo·q_lo
  q8_one_level,  // their high level alone (the hionly probe, llama.cpp's q8_1 without its fp16 scale)
  fp16,          // fp16 activations (a W4A16-style decode on fp16 tensor cores; the prefill GEMMs' activations)
};

// Replaces x[0..n) by the values llama.cpp's vec_dot would see for a weight of `weight_type`.
// n must be a multiple of the rounding block (32 or 256) for the quantized cases.
void round_activations_like_llama(model::ggml_type weight_type, float* x, std::size_t n);

// Replaces x[0..n) by its value under `mode` for a weight of `weight_type` (exact: unchanged; the study
// modes: n a multiple of 32).
void round_activations(activation_rounding mode, model::ggml_type weight_type, float* x, std::size_t n);

}  // namespace worker::cpu
