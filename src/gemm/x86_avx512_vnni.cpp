// Quantized GEMM on AVX512-VNNI (Cascade Lake, Ice Lake, Zen 4+, Sapphire Rapids):
//   W8A8 / W4A8: u8 q times s8 activations in VNNI dot products (vpdpbusd), 64 per instruction,
//     exact int32 group sums (VnniBlock).
//   One row of float x: x as fixed point in four int8 limbs on VNNI (LimbBlock).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

#include "common/simd/x86_avx512.hpp"
#include "common/simd/x86_avx512_dot.hpp"
#include "gemm/generic.hpp"
#include "gemm/x86_avx512_prepare.hpp"
#include "gemm/x86_avx512_blocking.hpp"

namespace pagedinfer::detail {
namespace {

using Storage = QuantizedWeight::Storage;
using A = Avx512Arch;

inline int32_t load32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The nibbles of one int4 word of a tile as u8 (half 0: low nibbles, half 1: high), read from
// memory each time, and a broadcast unit of activations. Volatile asm pins them in the order
// written: with plain intrinsics GCC 12 keeps the words and both halves' nibbles live at once
// and CSEs the broadcasts, more vectors than registers beside 24 accumulators, and spilled
// accumulators in the innermost loop.
inline __m512i int4_nibbles(const uint32_t* word, int half, __m512i low) {
  __m512i q;
  const __m512i& m = *reinterpret_cast<const __m512i*>(word);
  if (half == 0) asm volatile("vpandd %[m], %[low], %[q]" : [q] "=v"(q) : [m] "m"(m), [low] "v"(low));
  else asm volatile("vpsrld $4, %[m], %[q]\n\tvpandd %[q], %[low], %[q]" : [q] "=&v"(q) : [m] "m"(m), [low] "v"(low));
  return q;
}
inline __m512i broadcast_unit(const char* unit) {
  __m512i x;
  asm volatile("vpbroadcastd %[m], %[x]" : [x] "=v"(x) : [m] "m"(*reinterpret_cast<const int32_t*>(unit)));
  return x;
}

template <int BITS>
struct VnniBlock {
  static constexpr bool kSetsC = true;
  template <int R, int NT, int S>
  static void run(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    if constexpr (S == 1) return compute_one_row<VnniBlock, R, NT>(j, t0, m0, c);
    constexpr bool kMayStream = BITS == 4 || S != 4;  // not int8 on 4 x 4
    compute_block<VnniBlock, R, NT, S, kMayStream>(j, t0, m0, c);
  }

  template <int R, int NT, int S, bool kStream>
  static void compute(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    const Storage& w = *j.w;
    constexpr int KPW = 32 / BITS;
    const __m512i low_nibbles = _mm512_set1_epi32(0x0f0f0f0f);
    const char* act = j.act.unit(m0, 0);  // S rows interleaved: unit u of row r at (u * S + r) * 4
    const uint32_t* tile[NT];
    for (int i = 0; i < NT; ++i) tile[i] = w.tile(t0 + i);
    const int64_t words_per_group = w.group / KPW;
    for (int64_t g = 0; g < w.groups; ++g) {
      // Every loop over acc is unrolled so that its indices are constants (zero_accumulators).
      __m512i acc[R][NT][kSets<R>];
      zero_accumulators(acc);
      // int4: a set per half of a word, the words on alternate pairs of sets. int8: a set per
      // word. (With streaming, int8 at one row had read DRAM faster with its sets in memory.)
      constexpr int kWordSets = BITS == 8 ? kSets<R> : (kSets<R> + 1) / 2;
      for_each_unrolled<kWordSets>(g * words_per_group, (g + 1) * words_per_group, [&](int64_t jw, auto word_set) {
        if constexpr (kStream) prefetch_stream(tile, jw);
        if constexpr (BITS == 8) {
          __m512i word[NT];
          for (int i = 0; i < NT; ++i) word[i] = _mm512_loadu_si512(tile[i] + jw * kTile);
          for (int r = 0; r < R; ++r) {
            const __m512i x = _mm512_set1_epi32(load32(act + (jw * S + r) * 4));
            for (int i = 0; i < NT; ++i) {
              __m512i& a = acc[r][i][word_set];
              a = VnniDot::dot(a, word[i], x);
            }
          }
        } else {
          // Bytes (0, 4, 1, 5) and (2, 6, 3, 7) of the word's 8 k; prepare.hpp stored the
          // activations in this order.
#pragma GCC unroll 2
          for (int half = 0; half < 2; ++half) {
            __m512i q[NT];
#pragma GCC unroll 4
            for (int i = 0; i < NT; ++i) q[i] = int4_nibbles(tile[i] + jw * kTile, half, low_nibbles);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
              const __m512i x = broadcast_unit(act + ((jw * 2 + half) * S + r) * 4);
#pragma GCC unroll 4
              for (int i = 0; i < NT; ++i) {
                __m512i& a = acc[r][i][(2 * word_set + half) % kSets<R>];
                a = VnniDot::dot(a, q[i], x);
              }
            }
          }
        }
      });
#pragma GCC unroll 4
      for (int i = 0; i < NT; ++i) {
        const GroupParams gp(w, g, t0 + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          __m512i sum = acc[r][i][0];
#pragma GCC unroll 4
          for (int set = 1; set < kSets<R>; ++set) sum = _mm512_add_epi32(sum, acc[r][i][set]);
          gp.flush(c + (r * NT + i) * kTile, _mm512_cvtepi32_ps(sum), j.act_sums[(m0 + r) * w.groups + g], g > 0);
        }
      }
    }
  }
};

// One row of float x as fixed point (kernel.hpp's kFixedLimbs, linear.hpp) on VNNI: each weight
// word meets the four limbs of its activations in four dot products (int4: per half word), four
// exact int32 group sums, which the group's flush joins in fp32 (S = ((A0 * 256 + A1) * 256 +
// A2) * 256 + A3: three roundings, each relative to the partial sum) before the scale; the row
// scale comes last (epilogue). For cores where vdpbf16ps is slow (dispatch.cpp). Per 64-byte
// word, int4 takes 8 dot products and 3 shifts or masks, where vdpbf16ps takes 4 dot products
// and fp32 FMAs 8 FMAs, 7 shifts and 8 table lookups.
template <int BITS>
struct LimbBlock {
  static constexpr bool kSetsC = true;
  static constexpr int KPW = 32 / BITS, kHalves = BITS == 4 ? 2 : 1;

  template <int R, int NT, int S>
  static void run(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    static_assert(R == 1 && S == 1, "one row, row-major activations");
    compute_one_row<LimbBlock, R, NT>(j, t0, m0, c);
  }

  template <int R, int NT, int S, bool kStream>
  static void compute(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    const Storage& w = *j.w;
    constexpr int L = kFixedLimbs;
    const __m512i low_nibbles = _mm512_set1_epi32(0x0f0f0f0f);
    const char* act = j.act.unit(m0, 0);  // unit u of limb l at (u * L + l) * 4
    const uint32_t* tile[NT];
    for (int i = 0; i < NT; ++i) tile[i] = w.tile(t0 + i);
    const int64_t words_per_group = w.group / KPW;
    for (int64_t g = 0; g < w.groups; ++g) {
      // A set per (limb, half word), and for int8 per (limb, word parity): each dot product
      // waits on one of the previous word's.
      __m512i acc[L][NT][2];
#pragma GCC unroll 4
      for (int l = 0; l < L; ++l)
#pragma GCC unroll 2
        for (int i = 0; i < NT; ++i) acc[l][i][0] = acc[l][i][1] = _mm512_setzero_si512();
      for_each_unrolled<2 / kHalves>(g * words_per_group, (g + 1) * words_per_group, [&](int64_t jw, auto word_set) {
        if constexpr (kStream) prefetch_stream(tile, jw);
#pragma GCC unroll 2
        for (int half = 0; half < kHalves; ++half) {
          __m512i q[NT];
#pragma GCC unroll 2
          for (int i = 0; i < NT; ++i)
            q[i] = BITS == 4 ? int4_nibbles(tile[i] + jw * kTile, half, low_nibbles)
                             : _mm512_loadu_si512(tile[i] + jw * kTile);
          const char* unit = act + (jw * kHalves + half) * L * 4;
#pragma GCC unroll 4
          for (int l = 0; l < L; ++l) {
            const __m512i x = broadcast_unit(unit + l * 4);
#pragma GCC unroll 2
            for (int i = 0; i < NT; ++i) {
              __m512i& a = acc[l][i][BITS == 4 ? half : int(word_set)];
              a = VnniDot::dot(a, q[i], x);
            }
          }
        }
      });
#pragma GCC unroll 2
      for (int i = 0; i < NT; ++i) {
        const __m512 radix = _mm512_set1_ps(256.f);
        const auto limb_sum = [&](int l) { return _mm512_cvtepi32_ps(_mm512_add_epi32(acc[l][i][0], acc[l][i][1])); };
        __m512 sum = limb_sum(0);
#pragma GCC unroll 4
        for (int l = 1; l < L; ++l) sum = _mm512_fmadd_ps(sum, radix, limb_sum(l));
        GroupParams(w, g, t0 + i).flush(c + i * kTile, sum, j.act_sums[m0 * w.groups + g], g > 0);
      }
    }
  }
};

}  // namespace

GemmKernel gemm_avx512_vnni(const GemmCase& c) {
  GemmKernel k;
  k.compute = ComputeType::i8;
  k.unit = LinearUnit::int8_dot;
  k.prepare = avx512_int8_prepare(c.w->format.bits, c.x);
  if (c.w->format.bits == 4) choose_blocking<VnniBlock<4>, 6, 4>(k, *c.w, c.m);
  else choose_blocking<VnniBlock<8>, 6, 4>(k, *c.w, c.m);
  return k;
}

GemmKernel gemm_avx512_fixed_point(const GemmCase& c) {
  GemmKernel k;
  k.compute = ComputeType::i8_limbs;
  k.unit = LinearUnit::int8_dot;
  k.prepare = avx512_fixed_prepare(c.w->format.bits, c.x);
  k.run = one_row_run<LimbBlock>(*c.w);
  return k;
}

}  // namespace pagedinfer::detail
