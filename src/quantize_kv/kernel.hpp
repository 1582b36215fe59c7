// The contract between the quantizing KV writes (append_kv, the fused RoPE append) and the
// per-ISA kernels: one row of a KV head's fp32 values into a quantized cache's 8-bit codes, as
// kv_cache.hpp states (fp8: x / scale, dtype.hpp's saturating rounding; i8: the row's own scale
// max |x| / 127, x / s rounded to nearest even).
#pragma once
#include <cstdint>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer::detail {

// Writes codes of x[0, n) to dst and returns the row's scale: fp8 divides by `scale` and returns
// it; i8 ignores it and returns its own (0 for a row of zeros, NaN with codes 0 for a row
// holding an infinity or NaN). n >= 0, any alignment.
using QuantizeRowKernel = float (*)(const float* x, int32_t n, float scale, void* dst);

// dispatch.cpp: the kernel the table (or a forced kernel) picks for this cache dtype (8-bit).
QuantizeRowKernel quantize_kv_kernel(DType kv);

// One per ISA translation unit, registered in dispatch.cpp; on aarch64 only the baseline (NEON).
QuantizeRowKernel quantize_kv_kernel_baseline(DType kv);
QuantizeRowKernel quantize_kv_kernel_avx2(DType kv);
QuantizeRowKernel quantize_kv_kernel_avx512(DType kv);

}  // namespace pagedinfer::detail
