// Sampling passes for AVX-512 (F/BW/VL/DQ).
#include "common/simd/x86_avx512.hpp"
#include "sampling/generic.hpp"

namespace pagedinfer::detail {

SamplingKernel sampling_kernel_avx512() { return sampling_kernel_for<Avx512Arch>(); }

}  // namespace pagedinfer::detail
