// Optional emulation of how llama.cpp's CPU backend rounds the ACTIVATIONS of a matmul before the dot
// product, for the engine comparison only. Our reference keeps activations in fp32; ggml first converts
// the activation row to the weight type's "vec_dot type" (ggml-cpu.c type traits):
//   F32 -> F32 (unchanged)          F16 -> F16 (round to nearest even)     BF16 -> BF16 (nearest even)
//   Q4_0, Q5_0, Q8_0, MXFP4 -> Q8_0: per 32 values, d = amax/127, q = round-half-even(x·127/amax),
//                                    value = fp16(d)·q
//   Q4_K, Q5_K, Q6_K -> Q8_K:        per 256 values, m = the value of largest magnitude (signed),
//                                    s = -127/m, q = min(127, round-half-even(s·x)), value = q/s
// Used as a diagnostic for the llama.cpp comparison (engine_eval --llama-rounding / --write-reference):
// moving our own log-probs by rounding activations this way shifts them by as much as llama.cpp deviates
// from us, which is what the per-type tolerances of tests/oracle/logits_compare.mjs stand on. It does NOT
// reproduce llama.cpp bit for bit (measured on tiny-qwen2: it removes about half of the deviation in the
// layers and none at the output projection; llama.cpp's kernels round at places this does not model).
// Production code never enables it.
#pragma once

#include <cstddef>

#include "model/ggml_type.hpp"

namespace worker::cpu {

enum class activation_rounding {
  exact,      // fp32 activations (the reference)
  llama_cpu,  // round like llama.cpp's CPU backend for the weight's type (see above)
};

// Replaces x[0..n) by the values llama.cpp's vec_dot would see for a weight of `weight_type`.
// n must be a multiple of the rounding block (32 or 256) for the quantized cases.
void round_activations_like_llama(model::ggml_type weight_type, float* x, std::size_t n);

}  // namespace worker::cpu
