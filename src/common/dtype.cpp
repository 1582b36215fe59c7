#include "pagedinfer/dtype.hpp"

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
  }
  return 0.f;
}

void store_from_float(void* p, DType t, std::size_t i, float x) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = x; break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = float_to_bf16_bits(x); break;
    case DType::f16: static_cast<uint16_t*>(p)[i] = float_to_f16_bits(x); break;
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
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
  }
  return "invalid";
}

float bf16_to_float(uint16_t bits) { return detail::bf16_bits_to_float(bits); }
uint16_t float_to_bf16(float x) { return detail::float_to_bf16_bits(x); }
float f16_to_float(uint16_t bits) { return detail::f16_bits_to_float(bits); }
uint16_t float_to_f16(float x) { return detail::float_to_f16_bits(x); }

void convert(const void* src, DType src_type, void* dst, DType dst_type, std::size_t n) {
  PAGEDINFER_CHECK(dtype_size(src_type) != 0, "convert", "src_type is not a valid DType");
  PAGEDINFER_CHECK(dtype_size(dst_type) != 0, "convert", "dst_type is not a valid DType");
  PAGEDINFER_CHECK(n == 0 || (src && dst), "convert", "src and dst must not be null");
  detail::convert_n(src, src_type, dst, dst_type, n);
}

}  // namespace pagedinfer
