// Quantized GEMM for AVX2 + FMA: the generic kernels.
#include "common/simd/x86_avx2.hpp"
#include "gemm/generic.hpp"

namespace pagedinfer::detail {

GemmKernel gemm_kernel_avx2(const QuantizedWeight::Storage& w, LinearActivations mode, DType x, int64_t) {
  return generic_gemm_kernel<Avx2Arch>(w, mode, x);
}

}  // namespace pagedinfer::detail
