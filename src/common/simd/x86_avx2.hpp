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
  static B f16_low(xsimd::batch<uint32_t, Avx2Arch> u) {
    const __m256i h = _mm256_and_si256(u, _mm256_set1_epi32(0xffff));  // packus saturates: clear the high halves
    return _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1)));
  }
  static xsimd::batch<int32_t, Avx2Arch> s8(const int8_t* p) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  // 8 e4m3 values, exact: load_f8_e4m3's arithmetic in 16-bit lanes (no 32 -> 16 narrowing).
  static B f8_e4m3(const uint8_t* p) {
    const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    const __m128i nan = _mm_cmpeq_epi16(_mm_and_si128(b, _mm_set1_epi16(0x7f)), _mm_set1_epi16(0x7f));
    const __m128i h = _mm_slli_epi16(_mm_add_epi16(b, _mm_and_si128(b, _mm_set1_epi16(0x80))), 7);
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_blendv_epi8(h, _mm_set1_epi16(0x7e00), nan)), _mm256_set1_ps(256.f));
  }
  static xsimd::batch<int32_t, Avx2Arch> u8(const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static void store_bf16(uint16_t* p, B x) {
    const __m256i u = _mm256_castps_si256(x);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    const __m256i q = _mm256_srli_epi32(_mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan), 16);
    // packus works per 128-bit lane: [q0..3 q0..3 | q4..7 q4..7]; gather the two halves.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(q, q), _MM_SHUFFLE(3, 1, 2, 0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static void store_f16(uint16_t* p, B x) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static B swap_pairs(B x) { return _mm256_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)); }
  static B haddp(const B* rows) { return xsimd::haddp(rows); }  // xsimd 8.1, checked by the tests
  static uint64_t mask_bits(xsimd::batch_bool<float, Avx2Arch> b) { return uint64_t(_mm256_movemask_ps(b)); }
  static float hmax(B x) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, _MM_SHUFFLE(1, 1, 1, 1))));
  }
};

}  // namespace pagedinfer::detail
