// RoPE for the aarch64 baseline (NEON).
#include "common/simd/arm_neon.hpp"
#include "rope/generic.hpp"

namespace pagedinfer::detail {

RopeKernel rope_kernel_baseline(DType x, DType k_out) { return select_rope_kernel<xsimd::neon64>(x, k_out); }

}  // namespace pagedinfer::detail
