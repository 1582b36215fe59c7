// int8 activation preparation with AVX-512, for the VNNI kernels: the rule of linear.hpp 16
// values at a time, written straight into the interleaved ActLayout. Included only by
// x86_avx512_bf16.cpp. Act-order weights take the generic path (a gather per element anyway).
#pragma once
#include <cstring>

#include "common/simd/x86_avx512.hpp"
#include "gemm/prepare.hpp"

namespace pagedinfer::detail {
namespace {

inline void store32(char* p, int32_t v) { std::memcpy(p, &v, 4); }

template <DType X, WordOrder O>
struct Avx512PrepareI8 {
  using P = Prepare<Avx512Arch, X>;

  static void run(const PrepareJob& j, int64_t m0, int64_t m1) {
    const auto& w = *j.w;
    if (!w.k_order.empty()) return P::template i8<O>(j, m0, m1);
    static_assert(O == WordOrder::natural || O == WordOrder::vnni_int4, "VNNI orders only");
    // Within each 8 k: (0, 4, 1, 5, 2, 6, 3, 7) for int4 words (layout.hpp).
    const __m128i order = O == WordOrder::vnni_int4 ? _mm_setr_epi8(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15)
                                                    : _mm_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 limit = _mm512_set1_ps(127.f);
    for (int64_t m = m0; m < m1; ++m) {
      const char* x = P::x_row(j, m);
      const float inv = P::row_scale(j, m);
      const __m512 vinv = _mm512_set1_ps(inv);
      float* sums = j.act_sums + m * w.groups;
      std::fill(sums, sums + w.groups, 0.f);
      // The group's integer sum stays in a vector until the group ends (16 divides the group,
      // or there is one group): a horizontal sum per 16 k cost more than the quantization.
      // Locals: the byte stores below may alias anything, so fields would be reloaded each step.
      const int64_t unit_stride = 4 * j.act.rows;  // bytes from one unit of a row to its next
      const int64_t k = w.k, group = w.group;
      const bool one_row = j.act.rows == 1;
      __m512i group_sum = _mm512_setzero_si512();
      char* dst = j.act.unit(m, 0);
      int64_t i = 0, group_end = group;
      for (; i + 16 <= k; i += 16, dst += 4 * unit_stride) {
        __m512 v = _mm512_mul_ps(load_as<Avx512Arch, X>(x, i), vinv);
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_abs_ps(v), limit, _CMP_LE_OQ), v);
        const __m512i q = _mm512_cvtps_epi32(v);  // round to nearest even
        group_sum = _mm512_add_epi32(group_sum, q);
        if (i + 16 == group_end) {
          sums[i / group] += float(_mm512_reduce_add_epi32(group_sum));
          group_sum = _mm512_setzero_si512();
          group_end += group;
        }
        const __m128i bytes = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(q), order);
        if (one_row) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bytes);
        } else {
          store32(dst, _mm_cvtsi128_si32(bytes));
          store32(dst + unit_stride, _mm_extract_epi32(bytes, 1));
          store32(dst + 2 * unit_stride, _mm_extract_epi32(bytes, 2));
          store32(dst + 3 * unit_stride, _mm_extract_epi32(bytes, 3));
        }
      }
      if (i % group) sums[(i - 1) / group] += float(_mm512_reduce_add_epi32(group_sum));
      for (; i < w.k; ++i) {
        const int8_t v = P::quantize_one(scalar_as<X>(x, i), inv);
        P::template put<O>(j, m, i, v);
        sums[i / w.group] += float(v);
      }
      for (; i < w.k_packed; ++i) P::template put<O>(j, m, i, 0);
    }
  }
};

}  // namespace
}  // namespace pagedinfer::detail
