// The contract between the conversion entry points (convert(), append_kv, the fused RoPE append)
// and the per-ISA kernels: n values from one storage type to another, rounding to nearest even
// as the scalar conversions of dtype.hpp do (NaN stays NaN, overflow becomes infinity).
#pragma once
#include <cstddef>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer::detail {

// Converts src[0, n) into dst[0, n); src and dst do not overlap, any alignment.
using ConvertKernel = void (*)(const void* src, void* dst, std::size_t n);

// dispatch.cpp: the kernel the table (or a forced kernel) picks for these dtypes.
ConvertKernel convert_kernel(DType src, DType dst);

// One per ISA translation unit, registered in dispatch.cpp; on aarch64 only the baseline (NEON).
ConvertKernel convert_kernel_baseline(DType src, DType dst);
ConvertKernel convert_kernel_avx2(DType src, DType dst);
ConvertKernel convert_kernel_avx512(DType src, DType dst);

}  // namespace pagedinfer::detail
