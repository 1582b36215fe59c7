// SimdIsa for the x86-64 baseline (SSE2). No F16C at this level: fp16 goes through scalars.
#pragma once
#include <emmintrin.h>

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
  static B haddp(const B* rows) { return xsimd::haddp(rows); }  // xsimd 8.1, checked by the tests
};

}  // namespace pagedinfer::detail
