// GEMM on AVX512-BF16 dot products (Zen 4+, Cooper Lake, Sapphire Rapids) with bf16 x: W4A16 /
// W8A16, where q become exact bf16 (int4: through a 32-entry table, vpermw; int8: through fp32
// conversions), and W16A16 with bf16 weights, whose words are bf16 pairs as they are; they meet
// x in bf16 dot products (vdpbf16ps), 32 exact products per instruction.
#include <algorithm>
#include <cstring>

#include "common/simd/x86_avx512.hpp"
#include "common/simd/x86_avx512_dot.hpp"
#include "gemm/generic.hpp"
#include "gemm/x86_avx512_blocking.hpp"
#include "gemm/x86_avx512_pairs.hpp"

namespace pagedinfer::detail {
namespace {

using Storage = QuantizedWeight::Storage;
using A = Avx512Arch;

inline int32_t load32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// W4A16 / W8A16: q made exact bf16 pairs in registers (Pairs: Int4Pairs or Int8Pairs) meet x in
// bf16 dot products.
template <class Pairs>
struct Bf16Block {
  static constexpr bool kSetsC = true;  // the first group's flush writes c (run_blocks)

  template <int R, int NT, int S>
  static void run(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    compute_block<Bf16Block, R, NT, S>(j, t0, m0, c);
  }

  template <int R, int NT, int S, bool kStream>
  static void compute(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    const Storage& w = *j.w;
    const Pairs pairs;
    const char* act = j.act.unit(m0, 0);  // S rows interleaved: pair u of row r at (u * S + r) * 4
    const uint32_t* tile[NT];
    for (int i = 0; i < NT; ++i) tile[i] = w.tile(t0 + i);
    const int64_t words_per_group = w.group / Pairs::kKPerWord;
    for (int64_t g = 0; g < w.groups; ++g) {
      // Every loop over acc is unrolled so that its indices are constants (zero_accumulators).
      // One row: a set per pair of the word (int8 has two).
      constexpr int kAccSets = std::min(kSets<R>, Pairs::kPairs);
      __m512 acc[R][NT][kAccSets];
      zero_accumulators(acc);
      for (int64_t jw = g * words_per_group; jw < (g + 1) * words_per_group; ++jw) {
        __m512i word[NT];
        if constexpr (kStream) prefetch_stream(tile, jw);
        for (int i = 0; i < NT; ++i) word[i] = _mm512_loadu_si512(tile[i] + jw * kTile);
#pragma GCC unroll 4
        for (int h = 0; h < Pairs::kPairs; ++h) {
          const int64_t unit = jw * Pairs::kPairs + h;
          __m512i q[NT];
#pragma GCC unroll 4
          for (int i = 0; i < NT; ++i) q[i] = pairs(word[i], h);
#pragma GCC unroll 8
          for (int r = 0; r < R; ++r) {
            const __m512i x = _mm512_set1_epi32(load32(act + (unit * S + r) * 4));
#pragma GCC unroll 4
            for (int i = 0; i < NT; ++i) {
              __m512& a = acc[r][i][h % kAccSets];
              a = Bf16Dot::dot(a, q[i], x);
            }
          }
        }
      }
#pragma GCC unroll 4
      for (int i = 0; i < NT; ++i) {
        const GroupParams gp(w, g, t0 + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          __m512 sum = acc[r][i][0];
#pragma GCC unroll 4
          for (int set = 1; set < kAccSets; ++set) sum = _mm512_add_ps(sum, acc[r][i][set]);
          gp.flush(c + (r * NT + i) * kTile, sum, j.act_sums[(m0 + r) * w.groups + g], g > 0);
        }
      }
    }
  }
};

// W16A16, bf16 weights: each word is the pair of k that vdpbf16ps takes. One fp32 sum per
// column over all of k (no group params); one row keeps four sets of accumulators over
// consecutive words so that the dot products do not wait on each other.
struct DenseBf16Block {
  static constexpr bool kSetsC = true;  // stores c

  template <int R, int NT, int S>
  static void run(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    if constexpr (R == 1 && S == 1) compute_one_row<DenseBf16Block, R, NT>(j, t0, m0, c);
    else compute_block<DenseBf16Block, R, NT, S>(j, t0, m0, c);
  }

  template <int R, int NT, int S, bool kStream>
  static void compute(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    const char* act = j.act.unit(m0, 0);  // S rows interleaved: pair u of row r at (u * S + r) * 4
    const uint32_t* tile[NT];
    for (int i = 0; i < NT; ++i) tile[i] = j.w->tile(t0 + i);
    constexpr int kAccSets = kSets<R>;  // divides k_words: k_packed is a multiple of 8
    __m512 acc[R][NT][kAccSets];
    zero_accumulators(acc);
    for (int64_t j0 = 0; j0 < j.w->k_words(); j0 += kAccSets) {
#pragma GCC unroll 4
      for (int set = 0; set < kAccSets; ++set) {
        const int64_t jw = j0 + set;
        if constexpr (kStream) prefetch_stream(tile, jw);
        __m512i word[NT];
#pragma GCC unroll 4
        for (int i = 0; i < NT; ++i) word[i] = _mm512_loadu_si512(tile[i] + jw * kTile);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          const __m512i x = _mm512_set1_epi32(load32(act + (jw * S + r) * 4));
#pragma GCC unroll 4
          for (int i = 0; i < NT; ++i) acc[r][i][set] = Bf16Dot::dot(acc[r][i][set], word[i], x);
        }
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; ++i)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        __m512 sum = acc[r][i][0];
#pragma GCC unroll 4
        for (int set = 1; set < kAccSets; ++set) sum = _mm512_add_ps(sum, acc[r][i][set]);
        _mm512_store_ps(c + (r * NT + i) * kTile, sum);
      }
  }
};

}  // namespace

GemmKernel gemm_avx512_bf16_dot(const GemmCase& c) {
  GemmKernel k;
  k.compute = ComputeType::bf16;
  k.unit = LinearUnit::bf16_dot;
  k.prepare = &Prepare<A, DType::bf16>::bf16;
  if (!c.w->quantized()) {  // bf16 weights (dispatch.cpp)
    // Many rows: 6 x 4 (24 accumulators; 4 weight and 6 x loads per 24 dot products: with no
    // conversion to interleave, fewer loads per dot product beat 8 x 2; docs/design/gemm.md).
    choose_blocking<DenseBf16Block, 6, 4>(k, *c.w, c.m);
  } else if (c.w->format.bits == 4) choose_blocking<Bf16Block<Int4Pairs>, 8, 2>(k, *c.w, c.m);
  else choose_blocking<Bf16Block<Int8Pairs>, 8, 2>(k, *c.w, c.m);
  return k;
}

}  // namespace pagedinfer::detail
