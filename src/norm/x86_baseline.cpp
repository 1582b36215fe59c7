// RMSNorm for the x86-64 baseline (SSE2).
#include "common/simd/x86_sse2.hpp"
#include "norm/generic.hpp"

namespace pagedinfer::detail {

NormKernel norm_kernel_baseline(DType x, DType w) { return select_norm_kernel<xsimd::sse2>(x, w); }

}  // namespace pagedinfer::detail
