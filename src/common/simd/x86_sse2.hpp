// SimdIsa for the x86-64 baseline (SSE2). No F16C at this level: fp16 goes through scalars.
#pragma once
#include <emmintrin.h>

#include <cstring>

#include "common/simd/load.hpp"

namespace pagedinfer::detail {

template <>
struct SimdIsa<xsimd::sse2> {
  using B = xsimd::batch<float, xsimd::sse2>;
  static B bf16(const uint16_t* p) {
    const __m128i h = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return _mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h));
  }
  static B f16(const uint16_t* p) {
    alignas(16) float f[4];
    for (int i = 0; i < 4; ++i) f[i] = f16_bits_to_float(p[i]);
    return B::load_aligned(f);
  }
  static B f16_low(xsimd::batch<uint32_t, xsimd::sse2> u) {
    alignas(16) uint32_t h[4];
    u.store_aligned(h);
    alignas(16) float f[4];
    for (int i = 0; i < 4; ++i) f[i] = f16_bits_to_float(uint16_t(h[i]));
    return B::load_aligned(f);
  }
  static xsimd::batch<int32_t, xsimd::sse2> u8(const uint8_t* p) {
    int32_t four;
    std::memcpy(&four, p, 4);
    const __m128i z = _mm_setzero_si128();
    return _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(four), z), z);
  }
  static xsimd::batch<int32_t, xsimd::sse2> s8(const int8_t* p) {  // (u ^ 0x80) - 0x80 sign-extends
    const __m128i u = u8(reinterpret_cast<const uint8_t*>(p)), top = _mm_set1_epi32(0x80);
    return _mm_sub_epi32(_mm_xor_si128(u, top), top);
  }
  static void store_bf16(uint16_t* p, B x) {
    const __m128i u = _mm_castps_si128(x);
    const __m128i lsb = _mm_and_si128(_mm_srli_epi32(u, 16), _mm_set1_epi32(1));
    const __m128i r = _mm_add_epi32(u, _mm_add_epi32(lsb, _mm_set1_epi32(0x7fff)));
    const __m128i nan = _mm_castps_si128(_mm_cmpunord_ps(x, x));
    const __m128i sel = _mm_or_si128(_mm_andnot_si128(nan, r), _mm_and_si128(nan, _mm_or_si128(u, _mm_set1_epi32(0x400000))));
    // SSE2 has only a signed 32->16 pack: shift the unsigned halves into signed range and back.
    const __m128i bias = _mm_set1_epi32(0x8000);
    const __m128i q = _mm_sub_epi32(_mm_srli_epi32(sel, 16), bias);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_add_epi16(_mm_packs_epi32(q, q), _mm_set1_epi16(-0x8000)));
  }
  static void store_f16(uint16_t* p, B x) {
    alignas(16) float f[4];
    x.store_aligned(f);
    for (int i = 0; i < 4; ++i) p[i] = float_to_f16_bits(f[i]);
  }
  static B swap_pairs(B x) { return _mm_shuffle_ps(x, x, _MM_SHUFFLE(2, 3, 0, 1)); }
  static B haddp(const B* rows) { return xsimd::haddp(rows); }  // xsimd 8.1, checked by the tests
  static uint64_t mask_bits(xsimd::batch_bool<float, xsimd::sse2> b) { return uint64_t(_mm_movemask_ps(b)); }
  static float hmax(B x) {
    const __m128 m = _mm_max_ps(x, _mm_movehl_ps(x, x));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 1, 1, 1))));
  }
};

}  // namespace pagedinfer::detail
