// Quantized GEMM for the aarch64 baseline (NEON): the generic kernels.
#include "common/simd/arm_neon.hpp"
#include "gemm/generic.hpp"

namespace pagedinfer::detail {

GemmKernel gemm_kernel_baseline(const QuantizedWeight::Storage& w, LinearActivations mode, DType x, int64_t) {
  return generic_gemm_kernel<xsimd::neon64>(w, mode, x);
}

}  // namespace pagedinfer::detail
