// pagedinfer: element types and exact scalar conversions.
//
// Storage types are fp32, bf16 and fp16, for every tensor, and three 8-bit types for KV caches
// only (kv_cache.hpp's quantized caches): fp8 e4m3 (OCP "e4m3fn": bias 7, no infinity, NaN
// 0x7f / 0xff, largest 448), fp8 e5m2 (bias 15, IEEE-like: the top byte of an fp16, largest
// 57344) and int8. All arithmetic happens in fp32 (kernels) or double (references).
// Conversions to 16-bit types round to nearest, ties to even; NaN stays NaN, overflow becomes
// infinity. Conversions to fp8 round to nearest even and saturate: beyond the largest finite
// value (infinities included) they give +-largest, NaN stays NaN. Conversions from 16- and
// 8-bit types are exact.
#pragma once
#include <cstddef>
#include <cstdint>

#include "pagedinfer/export.hpp"

namespace pagedinfer {

enum class DType : int32_t { f32 = 0, bf16 = 1, f16 = 2, f8_e4m3 = 3, f8_e5m2 = 4, i8 = 5 };

// True for f32, bf16 and f16: the types of activations, weights' scales and outputs. The 8-bit
// types are for KV caches only.
PAGEDINFER_API bool is_float_dtype(DType t);

// Size of one element in bytes.
PAGEDINFER_API std::size_t dtype_size(DType t);
// "f32", "bf16", "f16", "f8_e4m3", "f8_e5m2", "i8"; "invalid" for a value outside the enum.
PAGEDINFER_API const char* dtype_name(DType t);

// Bit patterns of 16-bit floats, as stored in tensors.
PAGEDINFER_API float bf16_to_float(uint16_t bits);
PAGEDINFER_API uint16_t float_to_bf16(float x);
PAGEDINFER_API float f16_to_float(uint16_t bits);
PAGEDINFER_API uint16_t float_to_f16(float x);
// fp8 bit patterns (saturating, see above).
PAGEDINFER_API float f8_e4m3_to_float(uint8_t bits);
PAGEDINFER_API uint8_t float_to_f8_e4m3(float x);
PAGEDINFER_API float f8_e5m2_to_float(uint8_t bits);
PAGEDINFER_API uint8_t float_to_f8_e5m2(float x);

// Converts `n` elements between any two of f32, bf16 and f16 (same type: a copy), vectorized (the
// registry's op "convert", which append_kv and the fused RoPE append use too).
PAGEDINFER_API void convert(const void* src, DType src_type, void* dst, DType dst_type, std::size_t n);
// The registered kernel (kernels.hpp) that convert runs for these dtypes, now.
PAGEDINFER_API const char* convert_kernel_name(DType src_type, DType dst_type);

}  // namespace pagedinfer
