// pagedinfer: element types and exact scalar conversions.
//
// Storage types are fp32, bf16 and fp16. All arithmetic happens in fp32 (kernels) or double
// (references). Conversions to 16-bit types round to nearest, ties to even; NaN stays NaN,
// overflow becomes infinity. Conversions from 16-bit types are exact.
#pragma once
#include <cstddef>
#include <cstdint>

#include "pagedinfer/export.hpp"

namespace pagedinfer {

enum class DType : int32_t { f32 = 0, bf16 = 1, f16 = 2 };

// Size of one element in bytes.
PAGEDINFER_API std::size_t dtype_size(DType t);
// "f32", "bf16", "f16"; "invalid" for a value outside the enum.
PAGEDINFER_API const char* dtype_name(DType t);

// Bit patterns of 16-bit floats, as stored in tensors.
PAGEDINFER_API float bf16_to_float(uint16_t bits);
PAGEDINFER_API uint16_t float_to_bf16(float x);
PAGEDINFER_API float f16_to_float(uint16_t bits);
PAGEDINFER_API uint16_t float_to_f16(float x);

// Converts `n` elements between any two storage types (same type: a copy), vectorized (the
// registry's op "convert", which append_kv and the fused RoPE append use too).
PAGEDINFER_API void convert(const void* src, DType src_type, void* dst, DType dst_type, std::size_t n);
// The registered kernel (kernels.hpp) that convert runs for these dtypes, now.
PAGEDINFER_API const char* convert_kernel_name(DType src_type, DType dst_type);

}  // namespace pagedinfer
