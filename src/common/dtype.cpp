#include "pagedinfer/dtype.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/check.hpp"
#include "common/convert.hpp"
#include "common/scalar_convert.hpp"
#include "convert/kernel.hpp"

namespace pagedinfer {

namespace detail {

float load_as_float(const void* p, DType t, std::size_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::bf16: return bf16_bits_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::f16: return f16_bits_to_float(static_cast<const uint16_t*>(p)[i]);
    case DType::f8_e4m3: return f8_e4m3_bits_to_float(static_cast<const uint8_t*>(p)[i]);
    case DType::f8_e5m2: return f8_e5m2_bits_to_float(static_cast<const uint8_t*>(p)[i]);
    case DType::i8: return float(static_cast<const int8_t*>(p)[i]);
  }
  return 0.f;
}

void store_from_float(void* p, DType t, std::size_t i, float x) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = x; break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = float_to_bf16_bits(x); break;
    case DType::f16: static_cast<uint16_t*>(p)[i] = float_to_f16_bits(x); break;
    case DType::f8_e4m3: static_cast<uint8_t*>(p)[i] = float_to_f8_e4m3_bits(x); break;
    case DType::f8_e5m2: static_cast<uint8_t*>(p)[i] = float_to_f8_e5m2_bits(x); break;
    case DType::i8: static_cast<int8_t*>(p)[i] = int8_t(std::max(-127.f, std::min(127.f, std::nearbyint(x)))); break;
  }
}

void convert_n(const void* src, DType src_type, void* dst, DType dst_type, std::size_t n) {
  if (src_type == dst_type) {
    std::memcpy(dst, src, n * dtype_size(src_type));
    return;
  }
  convert_kernel(src_type, dst_type)(src, dst, n);
}

}  // namespace detail

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32: return 4;
    case DType::bf16: return 2;
    case DType::f16: return 2;
    case DType::f8_e4m3:
    case DType::f8_e5m2:
    case DType::i8: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::f8_e4m3: return "f8_e4m3";
    case DType::f8_e5m2: return "f8_e5m2";
    case DType::i8: return "i8";
  }
  return "invalid";
}

bool is_float_dtype(DType t) { return t == DType::f32 || t == DType::bf16 || t == DType::f16; }

float bf16_to_float(uint16_t bits) { return detail::bf16_bits_to_float(bits); }
uint16_t float_to_bf16(float x) { return detail::float_to_bf16_bits(x); }
float f16_to_float(uint16_t bits) { return detail::f16_bits_to_float(bits); }
uint16_t float_to_f16(float x) { return detail::float_to_f16_bits(x); }
float f8_e4m3_to_float(uint8_t bits) { return detail::f8_e4m3_bits_to_float(bits); }
uint8_t float_to_f8_e4m3(float x) { return detail::float_to_f8_e4m3_bits(x); }
float f8_e5m2_to_float(uint8_t bits) { return detail::f8_e5m2_bits_to_float(bits); }
uint8_t float_to_f8_e5m2(float x) { return detail::float_to_f8_e5m2_bits(x); }

void convert(const void* src, DType src_type, void* dst, DType dst_type, std::size_t n) {
  PAGEDINFER_CHECK(is_float_dtype(src_type), "convert", "src_type must be f32, bf16 or f16");
  PAGEDINFER_CHECK(is_float_dtype(dst_type), "convert", "dst_type must be f32, bf16 or f16");
  PAGEDINFER_CHECK(n == 0 || (src && dst), "convert", "src and dst must not be null");
  detail::convert_n(src, src_type, dst, dst_type, n);
}

}  // namespace pagedinfer
