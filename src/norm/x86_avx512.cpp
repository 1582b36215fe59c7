// RMSNorm for AVX-512 (F/BW/VL/DQ).
#include "common/simd/x86_avx512.hpp"
#include "norm/generic.hpp"

namespace pagedinfer::detail {

NormKernel norm_kernel_avx512(DType x, DType w) { return select_norm_kernel<Avx512Arch>(x, w); }

}  // namespace pagedinfer::detail
