// Quantized GEMM for the x86-64 baseline (SSE2): the generic kernels.
#include "common/simd/x86_sse2.hpp"
#include "gemm/generic.hpp"

namespace pagedinfer::detail {

GemmKernel gemm_kernel_baseline(const QuantizedWeight::Storage& w, LinearActivations mode, DType x, int64_t) {
  return generic_gemm_kernel<xsimd::sse2>(w, mode, x);
}

}  // namespace pagedinfer::detail
