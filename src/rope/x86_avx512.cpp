// RoPE for AVX-512 (F/BW/VL/DQ).
#include "common/simd/x86_avx512.hpp"
#include "rope/generic.hpp"

namespace pagedinfer::detail {

RopeKernel rope_kernel_avx512(DType x, DType k_out) { return select_rope_kernel<Avx512Arch>(x, k_out); }

}  // namespace pagedinfer::detail
