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

// fp8 (dtype.hpp): round to nearest even, saturate to the largest finite value, NaN stays NaN.
// Values below the smallest normal land on the subnormal grid by the fp32 adder's own rounding:
// adding a power of two whose ulp is that grid's step (2^14 for e4m3's 2^-9, 2^7 for e5m2's
// 2^-16) rounds to nearest even, and the integer part of the sum's mantissa is the code. The
// vector kernels (quantize_kv/generic.hpp) follow the same steps with the same constants.
struct F8E4M3 {
  static constexpr uint32_t kMaxBits = 0x43e00000u, kMinNormalBits = 0x3c800000u;  // 448, 2^-6
  static constexpr uint32_t kRebias = 0x3c000000u, kShift = 20;                     // bias 127 -> 7
  static constexpr uint32_t kMaxCode = 0x7e, kNanCode = 0x7f, kGridExp = 14;
};
struct F8E5M2 {
  static constexpr uint32_t kMaxBits = 0x47600000u, kMinNormalBits = 0x38800000u;  // 57344, 2^-14
  static constexpr uint32_t kRebias = 0x38000000u, kShift = 21;                     // bias 127 -> 15
  static constexpr uint32_t kMaxCode = 0x7b, kNanCode = 0x7e, kGridExp = 7;
};
// The subnormal grid's power of two, 2^kGridExp, as a float and as its fp32 bits.
template <class F>
constexpr float kF8Grid = float(1u << F::kGridExp);
template <class F>
constexpr uint32_t kF8GridBits = (127u + F::kGridExp) << 23;

template <class F>
inline uint8_t float_to_f8_bits(float x) {
  const uint32_t u = bits_of(x), a = u & 0x7fffffffu;
  const uint8_t sign = uint8_t((u >> 24) & 0x80u);
  if (a > 0x7f800000u) return uint8_t(sign | F::kNanCode);
  if (a >= F::kMaxBits) return uint8_t(sign | F::kMaxCode);
  if (a < F::kMinNormalBits) return uint8_t(sign | (bits_of(float_of(a) + kF8Grid<F>) - kF8GridBits<F>));
  uint32_t v = a - F::kRebias;
  v += ((1u << (F::kShift - 1)) - 1) + ((v >> F::kShift) & 1u);
  return uint8_t(sign | (v >> F::kShift));
}
inline uint8_t float_to_f8_e4m3_bits(float x) { return float_to_f8_bits<F8E4M3>(x); }
inline uint8_t float_to_f8_e5m2_bits(float x) { return float_to_f8_bits<F8E5M2>(x); }

inline float f8_e4m3_bits_to_float(uint8_t b) {
  const uint32_t sign = uint32_t(b & 0x80u) << 24, em = b & 0x7fu;
  if (em == 0x7fu) return float_of(sign | 0x7fc00000u);
  if (em < 8) return float_of(sign | bits_of(float(em) * 0.001953125f));  // em * 2^-9
  return float_of(sign | ((em << 20) + 0x3c000000u));
}

inline float f8_e5m2_bits_to_float(uint8_t b) { return f16_bits_to_float(uint16_t(b << 8)); }

}  // namespace
}  // namespace pagedinfer::detail
