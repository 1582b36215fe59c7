// Weight words as exact bf16 pairs, for bf16 dot products (vdpbf16ps) and AMX bf16 tiles, and
// single bytes of words. Included only by the AVX-512 translation units of src/gemm/.
#pragma once
#include "common/simd/x86_avx512.hpp"
#include "gemm/blocks.hpp"

namespace pagedinfer::detail {
namespace {

// A weight word's k as bf16 pairs for the bf16 dot product (vdpbf16ps): pair h of word j holds,
// per lane (one column), the k that meet activation pair j * kPairs + h in natural order.
// Both are exact: int4 and int8 q (stored unsigned) are integers below 256, which have 8
// significant bits, as bf16 does.
//
// int4, 8 k per lane: a 16-bit shift by 4h puts nibbles (2h, 2h + 1) in the low bits of the two
// halves, and a 32-entry table (vpermw) turns them into bf16. The table reads 5 index bits, the
// fifth of which is the next nibble's low bit, so both its halves hold the same 16 values.
struct Int4Pairs {
  static constexpr int kKPerWord = 8, kPairs = 4;
  __m512i table;
  Int4Pairs() {
    alignas(64) uint16_t t[32];
    for (int i = 0; i < 32; ++i) t[i] = float_to_bf16_bits(float(i & 15));
    table = _mm512_load_si512(t);
  }
  __m512i operator()(__m512i word, int h) const {
    return _mm512_permutexvar_epi16(h == 0 ? word : _mm512_srli_epi16(word, unsigned(4 * h)), table);
  }
};

// Byte b of every 32-bit lane of `word`, zero-extended (vpshufb works per 16-byte lane: dword
// d takes byte 4 d + b, and 0x80 zeroes the bytes above it).
inline __m512i lane_byte(__m512i word, int b) {
  const auto pick = [b](int d) { return int32_t(0x80808000u | unsigned(4 * d + b)); };
  return _mm512_shuffle_epi8(word, _mm512_set4_epi32(pick(3), pick(2), pick(1), pick(0)));
}

// int8, 4 k per lane: bytes 2h and 2h + 1 become floats (lane_byte, cvtdq2ps), whose upper
// halves are their bf16 and lower halves zero (q < 256 has at most 8 significant bits); the
// first's upper half shifted down beside the second's makes the pair.
// Twice as many instructions per pair as Int4Pairs, yet faster than splitting int8 into
// nibbles for the int4 table (twice the dot products) or unpacking a chunk of k once into an
// L1 panel that many row blocks share (docs/design/gemm.md).
struct Int8Pairs {
  static constexpr int kKPerWord = 4, kPairs = 2;
  __m512i operator()(__m512i word, int h) const {
    const auto as_float_bits = [](__m512i v) { return _mm512_castps_si512(_mm512_cvtepi32_ps(v)); };
    const __m512i first = as_float_bits(lane_byte(word, 2 * h)), second = as_float_bits(lane_byte(word, 2 * h + 1));
    return _mm512_or_si512(_mm512_srli_epi32(first, 16), second);
  }
};

}  // namespace
}  // namespace pagedinfer::detail
