// SimdLoad for AVX-512 (F/BW/VL/DQ).
#pragma once
#include <immintrin.h>

#include "common/simd/load.hpp"

namespace pagedinfer::detail {

using Avx512Arch = xsimd::avx512bw;

template <>
struct SimdLoad<Avx512Arch> {
  using B = xsimd::batch<float, Avx512Arch>;
  static B bf16(const uint16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  static B f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
};

}  // namespace pagedinfer::detail
