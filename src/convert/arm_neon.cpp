// Storage-type conversion for the aarch64 baseline (NEON).
#include "common/simd/arm_neon.hpp"
#include "convert/generic.hpp"

namespace pagedinfer::detail {

ConvertKernel convert_kernel_baseline(DType src, DType dst) { return select_convert_kernel<xsimd::neon64>(src, dst); }

}  // namespace pagedinfer::detail
