// RMSNorm for the aarch64 baseline (NEON).
#include "common/simd/arm_neon.hpp"
#include "norm/generic.hpp"

namespace pagedinfer::detail {

NormKernel norm_kernel_baseline(DType x, DType w) { return select_norm_kernel<xsimd::neon64>(x, w); }

}  // namespace pagedinfer::detail
