// Quantized GEMM for AVX-512 (F/BW/VL/DQ): the generic kernels.
#include "common/simd/x86_avx512.hpp"
#include "gemm/generic.hpp"

namespace pagedinfer::detail {

GemmKernel gemm_kernel_avx512(const QuantizedWeight::Storage& w, LinearActivations mode, DType x, int64_t) {
  return generic_gemm_kernel<Avx512Arch>(w, mode, x);
}

}  // namespace pagedinfer::detail
