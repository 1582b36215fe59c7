// What kernels need beyond xsimd 8.1, per architecture: loads and stores of W storage-type
// elements as one xsimd::batch<float, A>, a transposing horizontal add and a pair swap. SimdIsa<A> is specialized once
// per architecture in the ISA headers beside this one (x86_sse2.hpp, x86_avx2.hpp,
// x86_avx512.hpp, arm_neon.hpp), each included only by the TUs compiled for that ISA.
// load_as<A, T>() and store_as<A, T>() are what kernels call.
#pragma once
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

#include "common/scalar_convert.hpp"
#include "pagedinfer/dtype.hpp"

namespace pagedinfer::detail {

template <class A>
struct SimdIsa;
// static batch<float, A> bf16(const uint16_t* p);   W bf16 values from p, exact
// static batch<float, A> f16(const uint16_t* p);    W fp16 values from p, exact
// static batch<float, A> f16_low(batch<uint32_t, A> u);  the fp16 values in the low halves of u's lanes, exact
// static batch<int32_t, A> s8(const int8_t* p);    W bytes from p, sign-extended
// static batch<int32_t, A> u8(const uint8_t* p);   W bytes from p, zero-extended
// static batch<float, A> haddp(const batch* rows);  lane i = sum of the lanes of rows[i]
// static void store_bf16(uint16_t* p, batch x);     W values rounded to nearest even (NaN stays NaN)
// static void store_f16(uint16_t* p, batch x);      W values rounded to nearest even
// static batch<float, A> swap_pairs(batch x);       lanes (0 1)(2 3).. exchanged: [x1 x0 x3 x2 ..]
// static float hmax(batch x);                        the largest lane (xsimd 8.1 has no reduce_max)
// static uint64_t mask_bits(batch_bool<float, A> b); bit i set where lane i is true
// Optional (AVX-512 only; kernels test has_stream_bf16x2<SimdIsa<A>>):
// static void stream_bf16x2(uint16_t* p, batch a, batch b);  2W values as store_bf16 rounds them,
//                                                   to a 64-byte aligned p, past the caches
// static void stream_fence();                       orders those stores before later ones
template <class S, class = void>
struct has_stream_bf16x2 : std::false_type {};
template <class S>
struct has_stream_bf16x2<S, std::void_t<decltype(&S::stream_bf16x2)>> : std::true_type {};

namespace {

// W fp8 values from p, exact: both formats become fp16 bit patterns in 32-bit lanes. e5m2 is the
// top byte of an fp16. e4m3's exponent and mantissa placed at fp16's mantissa top,
// (b + (b & 0x80)) << 7, read as an fp16 are the value / 2^8 (bias 15 against 7; subnormals
// included, as fp16 subnormals), with the sign carried into bit 15; its NaN (0x7f) is patched.
template <class S, class = void>
struct has_f8_e4m3 : std::false_type {};  // an ISA's own e4m3 widening (SimdIsa::f8_e4m3)
template <class S>
struct has_f8_e4m3<S, std::void_t<decltype(&S::f8_e4m3)>> : std::true_type {};

template <class A>
inline xsimd::batch<float, A> load_f8_e4m3(const uint8_t* p) {
  if constexpr (has_f8_e4m3<SimdIsa<A>>::value) return SimdIsa<A>::f8_e4m3(p);
  using U = xsimd::batch<uint32_t, A>;
  const U b = xsimd::bitwise_cast<U>(SimdIsa<A>::u8(p));
  const U h = xsimd::select((b & U(0x7fu)) == U(0x7fu), U(0x7e00u), (b + (b & U(0x80u))) << 7);
  return SimdIsa<A>::f16_low(h) * xsimd::batch<float, A>(256.f);
}

template <class A>
inline xsimd::batch<float, A> load_f8_e5m2(const uint8_t* p) {
  using U = xsimd::batch<uint32_t, A>;
  return SimdIsa<A>::f16_low(xsimd::bitwise_cast<U>(SimdIsa<A>::u8(p)) << 8);
}

template <class A, DType T>
inline xsimd::batch<float, A> load_as(const void* row, int64_t i) {
  if constexpr (T == DType::i8) {
    return xsimd::to_float(SimdIsa<A>::s8(static_cast<const int8_t*>(row) + i));
  } else if constexpr (T == DType::f8_e4m3) {
    return load_f8_e4m3<A>(static_cast<const uint8_t*>(row) + i);
  } else if constexpr (T == DType::f8_e5m2) {
    return load_f8_e5m2<A>(static_cast<const uint8_t*>(row) + i);
  } else if constexpr (T == DType::f32) {
    return xsimd::batch<float, A>::load_unaligned(static_cast<const float*>(row) + i);
  } else if constexpr (T == DType::bf16) {
    return SimdIsa<A>::bf16(static_cast<const uint16_t*>(row) + i);
  } else {
    return SimdIsa<A>::f16(static_cast<const uint16_t*>(row) + i);
  }
}

template <class A, DType T>
inline void store_as(void* row, int64_t i, xsimd::batch<float, A> x) {
  if constexpr (T == DType::f32) {
    x.store_unaligned(static_cast<float*>(row) + i);
  } else if constexpr (T == DType::bf16) {
    SimdIsa<A>::store_bf16(static_cast<uint16_t*>(row) + i, x);
  } else {
    SimdIsa<A>::store_f16(static_cast<uint16_t*>(row) + i, x);
  }
}

template <DType T>
inline void store_scalar_as(void* row, int64_t i, float x) {
  if constexpr (T == DType::f32) {
    static_cast<float*>(row)[i] = x;
  } else if constexpr (T == DType::bf16) {
    static_cast<uint16_t*>(row)[i] = float_to_bf16_bits(x);
  } else {
    static_cast<uint16_t*>(row)[i] = float_to_f16_bits(x);
  }
}

template <DType T>
inline float scalar_as(const void* row, int64_t i) {
  if constexpr (T == DType::i8) {
    return float(static_cast<const int8_t*>(row)[i]);
  } else if constexpr (T == DType::f8_e4m3) {
    return f8_e4m3_bits_to_float(static_cast<const uint8_t*>(row)[i]);
  } else if constexpr (T == DType::f8_e5m2) {
    return f8_e5m2_bits_to_float(static_cast<const uint8_t*>(row)[i]);
  } else if constexpr (T == DType::f32) {
    return static_cast<const float*>(row)[i];
  } else if constexpr (T == DType::bf16) {
    return bf16_bits_to_float(static_cast<const uint16_t*>(row)[i]);
  } else {
    return f16_bits_to_float(static_cast<const uint16_t*>(row)[i]);
  }
}

// Brings [p, p + bytes) towards L1 ahead of use: paged KV rows are scattered, so the hardware
// prefetchers cannot guess the next page.
//
// On x86 the prefetch is a volatile asm statement: GCC 12 counts __builtin_prefetch as free of
// side effects, so a function that only prefetches is found "const" by its IPA analysis and a
// call to it is deleted once inlined through a helper (every prefetch of the attention kernel
// vanished that way; seen in the generated code).
inline void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) {
#if defined(__x86_64__)
    asm volatile("prefetcht1 %0" : : "m"(*(c + off)));
#else
    __builtin_prefetch(c + off, 0, 2);
#endif
  }
}

}  // namespace
}  // namespace pagedinfer::detail
