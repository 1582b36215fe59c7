// int8 activation preparation with AVX-512, for the VNNI kernels: the rule of linear.hpp 16
// values at a time, written straight into the interleaved ActLayout. Included only by
// x86_avx512_bf16.cpp. Act-order weights take the generic path (a gather per element anyway).
//
// Rows of one layout block are quantized in lockstep, 16 k of every row at a time, and their
// 4-byte units interleaved in registers: the block's 4 x rows units of those k are contiguous,
// so they leave in one or two vector stores. Written row by row, they were four 4-byte stores
// per row and 16 k, which stalled on the layout's lines (not in cache after a GEMM): 70% of
// the preparation's time, 3.6% of a W8A8 M = 512 call. A call that is mostly preparation
// (M = 512, N = 64, K = 4096, W8A8) went from 0.60-0.63 to 0.58-0.59 ms.
#pragma once
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>

#include "common/simd/x86_avx512.hpp"
#include "gemm/prepare.hpp"

namespace pagedinfer::detail {
namespace {

template <DType X, WordOrder O>
struct Avx512PrepareI8 {
  using P = Prepare<Avx512Arch, X>;

  static void run(const PrepareJob& j, int64_t m0, int64_t m1) {
    if (!j.w->k_order.empty()) return P::template i8<O>(j, m0, m1);
    static_assert(O == WordOrder::natural || O == WordOrder::vnni_int4, "VNNI orders only");
    switch (j.act.rows) {
      case 1: return blocks<1>(j, m0, m1);
      case 4: return blocks<4>(j, m0, m1);
      case 6: return blocks<6>(j, m0, m1);
      case 8: return blocks<8>(j, m0, m1);
      default: return P::template i8<O>(j, m0, m1);  // no VNNI kernel reads other layouts
    }
  }

  // Rows [m0, m1) in blocks of R rows (the layout's); rows of a block outside [m0, m1) are
  // neither read nor written.
  template <int R>
  static void blocks(const PrepareJob& j, int64_t m0, int64_t m1) {
    for (int64_t b = m0 / R * R; b < m1; b += R) {
      const int r0 = int(std::max<int64_t>(m0 - b, 0)), r1 = int(std::min<int64_t>(m1 - b, R));
      block<R>(j, b, r0, r1);
    }
  }

  // Rows b + [r0, r1) of the block starting at row b.
  template <int R>
  static void block(const PrepareJob& j, int64_t b, int r0, int r1) {
    const auto& w = *j.w;
    const int64_t k = w.k, group = w.group;
    // Within each 8 k: (0, 4, 1, 5, 2, 6, 3, 7) for int4 words (layout.hpp).
    const __m128i order = O == WordOrder::vnni_int4 ? _mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15)
                                                    : _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 limit = _mm512_set1_ps(kInt8Limit);
    const char* x[R];
    float inv[R];
    for (int r = r0; r < r1; ++r) {
      x[r] = P::x_row(j, b + r);
      inv[r] = P::row_scale(j, b + r);
      std::fill(j.act_sums + (b + r) * w.groups, j.act_sums + (b + r + 1) * w.groups, 0.f);
    }
    // Output dword o of 16 k is unit o / R of row o % R, which the bytes below hold at dword
    // 4 (o % R) + o / R (rows 0-3 in `lo`, 4-7 in `hi`, a 128-bit lane each).
    alignas(64) int32_t index[32];
    for (int o = 0; o < 32; ++o) index[o] = (o % R) * 4 + o / R;
    const __m512i index0 = _mm512_load_si512(index), index1 = _mm512_load_si512(index + 16);
    const __mmask16 rows0 = valid_dwords<R>(0, r0, r1), rows1 = valid_dwords<R>(16, r0, r1);
    // The integer sums of the current group stay in vectors until it ends (16 divides the
    // group, or there is one group): a horizontal sum per 16 k cost more than the quantizing.
    __m512i group_sum[R];
    for_rows<R>([&](auto r) { group_sum[r] = _mm512_setzero_si512(); });
    const auto add_group_sums = [&](int64_t g) {
      for_rows<R>([&](auto r) {
        if (r < r0 || r >= r1) return;
        j.act_sums[(b + r) * w.groups + g] += float(_mm512_reduce_add_epi32(group_sum[r]));
        group_sum[r] = _mm512_setzero_si512();
      });
    };
    char* dst = j.act.unit(b, 0);
    int64_t i = 0, group_end = group;
    for (; i + 16 <= k; i += 16, dst += 16 * R) {
      __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
      for_rows<R>([&](auto row) {
        constexpr int r = decltype(row)::value;
        if (r < r0 || r >= r1) return;
        __m512 v = _mm512_mul_ps(load_as<Avx512Arch, X>(x[r], i), _mm512_set1_ps(inv[r]));
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_abs_ps(v), limit, _CMP_LT_OQ), v);
        const __m512i q = _mm512_cvtps_epi32(v);  // round to nearest even
        group_sum[r] = _mm512_add_epi32(group_sum[r], q);
        __m128i bytes = _mm512_cvtepi32_epi8(q);
        if constexpr (O != WordOrder::natural) bytes = _mm_shuffle_epi8(bytes, order);
        if constexpr (r < 4) lo = _mm512_inserti32x4(lo, bytes, r);
        else hi = _mm512_inserti32x4(hi, bytes, r - 4);
      });
      if (i + 16 == group_end) {
        add_group_sums(i / group);
        group_end += group;
      }
      if constexpr (R == 1) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_castsi512_si128(lo));
      } else {
        _mm512_mask_storeu_epi32(dst, rows0, _mm512_permutex2var_epi32(lo, index0, hi));
        if constexpr (R > 4) _mm512_mask_storeu_epi32(dst + 64, rows1, _mm512_permutex2var_epi32(lo, index1, hi));
      }
    }
    if (i % group) add_group_sums((i - 1) / group);
    for (int r = r0; r < r1; ++r) {
      const int64_t m = b + r;
      float* sums = j.act_sums + m * w.groups;
      int64_t t = i;
      for (; t < k; ++t) {
        const int8_t v = P::quantize_one(scalar_as<X>(x[r], t), inv[r]);
        P::template put<O>(j, m, t, v);
        sums[t / group] += float(v);
      }
      for (; t < w.k_packed; ++t) P::template put<O>(j, m, t, 0);
    }
  }

  // f(std::integral_constant<int, r>) for r = 0 .. R - 1: the lane of an insert is an immediate.
  template <int R, class F>
  static void for_rows(F&& f) {
    each_row(f, std::make_integer_sequence<int, R>{});
  }
  template <class F, int... r>
  static void each_row(F& f, std::integer_sequence<int, r...>) {
    (f(std::integral_constant<int, r>{}), ...);
  }

  // The dwords [o0, o0 + 16) of a block's 16 k that belong to rows [r0, r1) (and exist: 4 R).
  template <int R>
  static __mmask16 valid_dwords(int o0, int r0, int r1) {
    __mmask16 m = 0;
    for (int o = o0; o < std::min(o0 + 16, 4 * R); ++o)
      if (o % R >= r0 && o % R < r1) m = __mmask16(m | (1u << (o - o0)));
    return m;
  }
};

}  // namespace
}  // namespace pagedinfer::detail
