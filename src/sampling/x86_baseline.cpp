// Sampling passes for the x86-64 baseline (SSE2).
#include "common/simd/x86_sse2.hpp"
#include "sampling/generic.hpp"

namespace pagedinfer::detail {

SamplingKernel sampling_kernel_baseline() { return sampling_kernel_for<xsimd::sse2>(); }

}  // namespace pagedinfer::detail
