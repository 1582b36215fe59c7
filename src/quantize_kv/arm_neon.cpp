// Quantizing KV writes for the aarch64 baseline (NEON).
#include "common/simd/arm_neon.hpp"
#include "quantize_kv/generic.hpp"

namespace pagedinfer::detail {

QuantizeRowKernel quantize_kv_kernel_baseline(DType kv) { return select_quantize_kv_kernel<xsimd::neon64>(kv); }

}  // namespace pagedinfer::detail
