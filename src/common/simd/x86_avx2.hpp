// SimdIsa for AVX2 + FMA + F16C.
#pragma once
#include <immintrin.h>

#include "common/simd/load.hpp"

namespace pagedinfer::detail {

using Avx2Arch = xsimd::fma3<xsimd::avx2>;

template <>
struct SimdIsa<Avx2Arch> {
  using B = xsimd::batch<float, Avx2Arch>;
  static B bf16(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static B f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static B haddp(const B* rows) { return xsimd::haddp(rows); }  // xsimd 8.1, checked by the tests
};

}  // namespace pagedinfer::detail
