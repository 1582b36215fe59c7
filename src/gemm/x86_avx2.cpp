// Quantized GEMM for AVX2 + FMA: the generic kernels.
#include "common/simd/x86_avx2.hpp"
#include "gemm/generic.hpp"

namespace pagedinfer::detail {

GemmKernel gemm_avx2_generic(const GemmCase& c) { return generic_gemm_kernel<Avx2Arch>(c); }

}  // namespace pagedinfer::detail
