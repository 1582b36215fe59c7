// Storage-type conversion for AVX-512 (F, BW, VL, DQ).
#include "common/simd/x86_avx512.hpp"
#include "convert/generic.hpp"

namespace pagedinfer::detail {

ConvertKernel convert_kernel_avx512(DType src, DType dst) { return select_convert_kernel<Avx512Arch>(src, dst); }

}  // namespace pagedinfer::detail
