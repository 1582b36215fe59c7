// RMSNorm for AVX2 + FMA + F16C.
#include "common/simd/x86_avx2.hpp"
#include "norm/generic.hpp"

namespace pagedinfer::detail {

NormKernel norm_kernel_avx2(DType x, DType w) { return select_norm_kernel<Avx2Arch>(x, w); }

}  // namespace pagedinfer::detail
