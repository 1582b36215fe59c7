// Sampling passes for the aarch64 baseline (NEON).
#include "common/simd/arm_neon.hpp"
#include "sampling/generic.hpp"

namespace pagedinfer::detail {

SamplingKernel sampling_kernel_baseline() { return sampling_kernel_for<xsimd::neon64>(); }

}  // namespace pagedinfer::detail
