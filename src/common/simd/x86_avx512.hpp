// SimdIsa for AVX-512 (F/BW/VL/DQ).
#pragma once
#include <immintrin.h>

#include "common/simd/load.hpp"

namespace pagedinfer::detail {

using Avx512Arch = xsimd::avx512bw;

template <>
struct SimdIsa<Avx512Arch> {
  using B = xsimd::batch<float, Avx512Arch>;
  static B bf16(const uint16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
  static B f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static B f16_low(xsimd::batch<uint32_t, Avx512Arch> u) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(u)); }
  static xsimd::batch<int32_t, Avx512Arch> s8(const int8_t* p) {
    return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  // 16 e4m3 values, exact: load_f8_e4m3's arithmetic in 16-bit lanes (no 32 -> 16 narrowing).
  static B f8_e4m3(const uint8_t* p) {
    const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256i em = _mm256_and_si256(b, _mm256_set1_epi16(0x7f));
    __m256i h = _mm256_slli_epi16(_mm256_add_epi16(b, _mm256_and_si256(b, _mm256_set1_epi16(0x80))), 7);
    h = _mm256_mask_mov_epi16(h, _mm256_cmpeq_epi16_mask(em, _mm256_set1_epi16(0x7f)), _mm256_set1_epi16(0x7e00));
    return _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.f));
  }
  static xsimd::batch<int32_t, Avx512Arch> u8(const uint8_t* p) {
    return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }

  // x rounded to bf16 (nearest even; NaN stays NaN), 16 values.
  static __m256i to_bf16(B x) {
    const __m512i u = _mm512_castps_si512(x);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));  // quiet NaN
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
  }
  static void store_bf16(uint16_t* p, B x) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), to_bf16(x)); }
  // 32 values to a 64-byte aligned line, bypassing the caches (no write-allocate read).
  static void stream_bf16x2(uint16_t* p, B a, B b) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(p), _mm512_inserti64x4(_mm512_castsi256_si512(to_bf16(a)), to_bf16(b), 1));
  }
  static void stream_fence() { _mm_sfence(); }  // after a kernel's streaming stores
  static void store_f16(uint16_t* p, B x) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  static B swap_pairs(B x) { return _mm512_permute_ps(x, _MM_SHUFFLE(2, 3, 0, 1)); }

  // Sums each of 16 vectors into one lane of the result. Written here because xsimd 8.1's
  // avx512f haddp returns lanes 2-5 and 10-13 in the wrong order.
  static B haddp(const B* rows) {
    // Pairs of rows: per 128-bit block L, [a0+a2, b0+b2, a1+a3, b1+b3] of that block.
    __m512 t[8];
    for (int k = 0; k < 8; ++k) {
      const __m512 a = rows[2 * k], b = rows[2 * k + 1];
      t[k] = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    }
    // Quads of rows: per 128-bit block L, the block's sum for rows 4k .. 4k+3.
    __m512 u[4];
    for (int k = 0; k < 4; ++k)
      u[k] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * k], t[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                           _mm512_shuffle_ps(t[2 * k], t[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // Fold the four 128-bit blocks: block k of the result holds rows 4k .. 4k+3.
    const __m512 x01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_f32x4(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 x23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_f32x4(u[2], u[3], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(x01, x23, _MM_SHUFFLE(3, 1, 3, 1)));
  }
  static float hmax(B x) { return _mm512_reduce_max_ps(x); }
  static uint64_t mask_bits(xsimd::batch_bool<float, Avx512Arch> b) { return uint64_t(__mmask16(b)); }
};

// v, opaque to the compiler so that it stays in a register: GCC 12 makes a constant or member
// vector (a conversion table) a memory operand of every instruction that reads it.
template <class V>
inline V in_register(V v) {
  asm("" : "+v"(v));
  return v;
}

}  // namespace pagedinfer::detail
