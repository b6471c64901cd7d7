// Prefill GEMM (gemm.cuh) through cuBLAS: column-major view of our row-major data, so
// Y^T[M×n] = W^T(stored K×M, transposed) · X^T(stored K×n).
#include "gpu/gemm.cuh"

#include <cublas_v2.h>

#include <algorithm>
#include <string>

#include "gpu/dequant.cuh"
#include "gpu/device.hpp"
#include "gpu/gpu_error.hpp"

namespace worker::gpu {

namespace {

void cublas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw gpu_error(gpu_error_code::device_error, std::string(what) + " failed: cuBLAS status " + std::to_string(static_cast<int>(s)));
  }
}

void gemm_rows(cublasHandle_t h, const __half* w_rows, std::uint32_t rows, std::uint32_t k, const gemm_args& a,
               std::uint32_t row0) {
  const float alpha = 1.0f, beta = a.accumulate ? 1.0f : 0.0f;
  cublas_check(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(rows), static_cast<int>(a.n), static_cast<int>(k),
                            &alpha, w_rows, CUDA_R_16F, static_cast<int>(k), a.x, CUDA_R_16F, static_cast<int>(a.ldx), &beta,
                            a.y + row0, CUDA_R_32F, static_cast<int>(a.ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

}  // namespace

void gemm_f16(const device_context& ctx, const gemm_args& a) {
  auto require = [](bool ok, const char* what) {
    if (!ok) throw gpu_error(gpu_error_code::invalid_argument, std::string("gemm_f16: ") + what);
  };
  require(a.x && a.y && a.ldx >= a.w.cols && a.ldy >= a.w.rows, "bad operands");
  if (a.n == 0) return;
  auto* h = static_cast<cublasHandle_t>(ctx.cublas());
  cublas_check(cublasSetStream(h, ctx.compute_stream()), "cublasSetStream");
  if (a.w.type == model::ggml_type::f16) {
    gemm_rows(h, reinterpret_cast<const __half*>(a.w.qs), a.w.rows, a.w.cols, a, 0);
    return;
  }
  require(a.tile && a.tile_elems >= a.w.cols, "dequantization tile too small");
  const std::uint32_t rows_per_tile = static_cast<std::uint32_t>(std::min<std::size_t>(a.w.rows, a.tile_elems / a.w.cols));
  for (std::uint32_t r0 = 0; r0 < a.w.rows; r0 += rows_per_tile) {
    const std::uint32_t rows = std::min(rows_per_tile, a.w.rows - r0);
    dequantize_rows_f16(a.w, r0, rows, a.tile, ctx.compute_stream());
    gemm_rows(h, a.tile, rows, a.w.cols, a, r0);
  }
}

}  // namespace worker::gpu
