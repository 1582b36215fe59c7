// Quantizing KV writes for AVX-512 (F, BW, VL, DQ).
#include "common/simd/x86_avx512.hpp"
#include "quantize_kv/generic.hpp"

namespace pagedinfer::detail {

QuantizeRowKernel quantize_kv_kernel_avx512(DType kv) { return select_quantize_kv_kernel<Avx512Arch>(kv); }

}  // namespace pagedinfer::detail
