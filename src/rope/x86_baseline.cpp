// RoPE for the x86-64 baseline (SSE2).
#include "common/simd/x86_sse2.hpp"
#include "rope/generic.hpp"

namespace pagedinfer::detail {

RopeKernel rope_kernel_baseline(DType x, DType k_out) { return select_rope_kernel<xsimd::sse2>(x, k_out); }

}  // namespace pagedinfer::detail
