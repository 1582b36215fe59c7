// Storage-type conversion for the x86-64 baseline (SSE2).
#include "common/simd/x86_sse2.hpp"
#include "convert/generic.hpp"

namespace pagedinfer::detail {

ConvertKernel convert_kernel_baseline(DType src, DType dst) { return select_convert_kernel<xsimd::sse2>(src, dst); }

}  // namespace pagedinfer::detail
