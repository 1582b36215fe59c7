// Sampling passes for AVX2 + FMA + F16C.
#include "common/simd/x86_avx2.hpp"
#include "sampling/generic.hpp"

namespace pagedinfer::detail {

SamplingKernel sampling_kernel_avx2() { return sampling_kernel_for<Avx2Arch>(); }

}  // namespace pagedinfer::detail
