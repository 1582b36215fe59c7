// Quantizing KV writes for AVX2 + FMA.
#include "common/simd/x86_avx2.hpp"
#include "quantize_kv/generic.hpp"

namespace pagedinfer::detail {

QuantizeRowKernel quantize_kv_kernel_avx2(DType kv) { return select_quantize_kv_kernel<Avx2Arch>(kv); }

}  // namespace pagedinfer::detail
