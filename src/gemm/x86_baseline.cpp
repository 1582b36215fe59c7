// Quantized GEMM for the x86-64 baseline (SSE2): the generic kernels.
#include "common/simd/x86_sse2.hpp"
#include "gemm/generic.hpp"

namespace pagedinfer::detail {

GemmKernel gemm_baseline_generic(const GemmCase& c) { return generic_gemm_kernel<xsimd::sse2>(c); }

}  // namespace pagedinfer::detail
