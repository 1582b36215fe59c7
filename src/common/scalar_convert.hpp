// Exact scalar conversions between fp32 and the 16-bit storage types.
//
// Internal linkage on purpose: ISA translation units include this header too, and an inline
// function with external linkage compiled under AVX-512 flags could be picked by the linker
// for baseline code (SIGILL on older CPUs). Each TU gets its own copy.
#pragma once
#include <cstdint>
#include <cstring>

namespace pagedinfer::detail {
namespace {

inline uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
inline float float_of(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

inline float bf16_bits_to_float(uint16_t b) { return float_of(uint32_t(b) << 16); }

// Round to nearest even; NaN keeps a quiet-NaN payload bit so it cannot round to infinity.
inline uint16_t float_to_bf16_bits(float x) {
  uint32_t u = bits_of(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float f16_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return float_of(sign | 0x7f800000u | (man << 13));  // inf / nan
  if (exp != 0) return float_of(sign | ((exp + 112u) << 23) | (man << 13));
  if (man == 0) return float_of(sign);
  // Subnormal: value = man * 2^-24, exact in fp32.
  const float mag = float(man) * float_of(0x33800000u);  // 2^-24
  return float_of(sign | bits_of(mag));
}

inline uint16_t float_to_f16_bits(float x) {
  const uint32_t u = bits_of(x);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u | ((a >> 13) & 0x3ffu));  // nan
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (a < 0x38800000u) {
    // Result is subnormal (or zero): add 0.5 so that the fp32 adder rounds to the 2^-24 grid
    // with ties to even, then read the integer part from the mantissa.
    const float r = float_of(a) + 0.5f;
    return uint16_t(sign | uint16_t(bits_of(r) - bits_of(0.5f)));
  }
  // Normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even.
  uint32_t v = a - 0x38000000u;
  v += 0xfffu + ((v >> 13) & 1u);
  return uint16_t(sign | uint16_t(v >> 13));
}

}  // namespace
}  // namespace pagedinfer::detail
