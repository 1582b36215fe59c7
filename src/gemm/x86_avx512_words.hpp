// What the AVX-512 BF16 / VNNI blocks share: a group's scales and offsets as vectors, and int8
// weight words as exact bf16 pairs. Included only by x86_avx512_bf16.cpp and x86_amx.cpp.
#pragma once
#include "common/simd/x86_avx512.hpp"
#include "gemm/blocks.hpp"

namespace pagedinfer::detail {
namespace {

// How far ahead of its reads a kernel streaming a tile's words from DRAM prefetches them
// (measured in x86_avx512_bf16.cpp, prefetch_stream).
constexpr int64_t kStreamAhead = 8192;

// The group params of blocks.hpp for one tile, vectorized.
struct GroupParams {
  __m512 scale, offset;
  GroupParams(const QuantizedWeight::Storage& w, int64_t g, int64_t t) {
    const int64_t base = w.param(t * kTile, g);
    scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.scales.data() + base)));
    switch (w.format.zero) {
      case QuantZero::symmetric: offset = _mm512_mul_ps(scale, _mm512_set1_ps(-float(1 << (w.format.bits - 1)))); break;
      case QuantZero::zero_point: {
        const __m512i z = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.zeros.data() + base)));
        offset = _mm512_mul_ps(scale, _mm512_sub_ps(_mm512_setzero_ps(), _mm512_cvtepi32_ps(z)));
        break;
      }
      case QuantZero::float_offset:
        offset = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.zeros.data() + base)));
        break;
    }
  }
  // c = sum * scale + offset * act_sum, or with accumulate c += that.
  void flush(float* c, __m512 sum, float act_sum, bool accumulate) const {
    __m512 v = accumulate ? _mm512_fmadd_ps(sum, scale, _mm512_load_ps(c)) : _mm512_mul_ps(sum, scale);
    _mm512_store_ps(c, _mm512_fmadd_ps(offset, _mm512_set1_ps(act_sum), v));
  }
};

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

// int8, 4 k per lane: bytes 2h and 2h + 1 become floats (cvtdq2ps), whose upper halves are their
// bf16 and lower halves zero; one merge takes the first's upper half down beside the second's.
// Twice as many instructions per pair as Int4Pairs, yet measured against splitting int8 into
// nibbles for the int4 table (twice the dot products), alternated in one process, 2 threads,
// 14336 x 4096 from DRAM: M = 1 1.05-1.15x, M = 3-4 1.23-1.26x, M = 8 1.56-1.62x; and against
// unpacking a chunk of k once into an L1 panel that many row blocks share (4096 x 4096):
// M = 32 1.21x, M = 512 1.02x.
struct Int8Pairs {
  static constexpr int kKPerWord = 4, kPairs = 2;
  __m512i operator()(__m512i word, int h) const {
    const __m512i byte = _mm512_set1_epi32(0xff), high_half = _mm512_set1_epi32(int32_t(0xffff0000u));
    const auto as_float_bits = [](__m512i v) { return _mm512_castps_si512(_mm512_cvtepi32_ps(v)); };
    const __m512i first = as_float_bits(_mm512_and_si512(h == 0 ? word : _mm512_srli_epi32(word, 16), byte));
    const __m512i second = as_float_bits(h == 0 ? _mm512_and_si512(_mm512_srli_epi32(word, 8), byte)
                                                : _mm512_srli_epi32(word, 24));
    // (first >> 16) | (second & high_half)
    return _mm512_ternarylogic_epi32(_mm512_srli_epi32(first, 16), second, high_half, 0xf8);
  }
};

}  // namespace
}  // namespace pagedinfer::detail
