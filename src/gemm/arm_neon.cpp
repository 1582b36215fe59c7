// Quantized GEMM for the aarch64 baseline (NEON): the generic kernels.
#include "common/simd/arm_neon.hpp"
#include "gemm/generic.hpp"

namespace pagedinfer::detail {

GemmKernel gemm_baseline_generic(const GemmCase& c) { return generic_gemm_kernel<xsimd::neon64>(c); }

}  // namespace pagedinfer::detail
