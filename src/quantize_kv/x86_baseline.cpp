// Quantizing KV writes for the x86-64 baseline (SSE2).
#include "common/simd/x86_sse2.hpp"
#include "quantize_kv/generic.hpp"

namespace pagedinfer::detail {

QuantizeRowKernel quantize_kv_kernel_baseline(DType kv) { return select_quantize_kv_kernel<xsimd::sse2>(kv); }

}  // namespace pagedinfer::detail
