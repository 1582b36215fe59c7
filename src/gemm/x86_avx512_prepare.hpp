// int8 activation preparation with AVX-512, for the VNNI kernels: the rule of linear.hpp 16
// values at a time, written straight into the interleaved ActLayout. Included only by
// x86_avx512_bf16.cpp. Act-order weights take the generic path (a gather per element anyway).
#pragma once
#include <cstring>

#include "common/simd/x86_avx512.hpp"
#include "gemm/prepare.hpp"

namespace pagedinfer::detail {
namespace {

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
      int64_t i = 0;
      for (; i + 16 <= w.k; i += 16) {
        __m512 v = _mm512_mul_ps(load_as<Avx512Arch, X>(x, i), vinv);
        v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_abs_ps(v), limit, _CMP_LE_OQ), v);
        const __m512i q = _mm512_cvtps_epi32(v);  // round to nearest even
        sums[i / w.group] += float(_mm512_reduce_add_epi32(q));  // 16 divides the group, or one group
        const __m128i bytes = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(q), order);
        if (j.act.rows == 1) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(j.act.unit(m, i / 4)), bytes);
        } else {
          alignas(16) int32_t units[4];
          _mm_store_si128(reinterpret_cast<__m128i*>(units), bytes);
          for (int u = 0; u < 4; ++u) std::memcpy(j.act.unit(m, i / 4 + u), &units[u], 4);
        }
      }
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
