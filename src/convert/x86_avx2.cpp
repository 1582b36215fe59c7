// Storage-type conversion for AVX2 + FMA + F16C.
#include "common/simd/x86_avx2.hpp"
#include "convert/generic.hpp"

namespace pagedinfer::detail {

ConvertKernel convert_kernel_avx2(DType src, DType dst) { return select_convert_kernel<Avx2Arch>(src, dst); }

}  // namespace pagedinfer::detail
