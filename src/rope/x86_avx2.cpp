// RoPE for AVX2 + FMA + F16C.
#include "common/simd/x86_avx2.hpp"
#include "rope/generic.hpp"

namespace pagedinfer::detail {

RopeKernel rope_kernel_avx2(DType x, DType k_out) { return select_rope_kernel<Avx2Arch>(x, k_out); }

}  // namespace pagedinfer::detail
