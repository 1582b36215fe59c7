// int8 activation preparation with AVX-512, for the VNNI and AMX kernels: the rule of linear.hpp
// 16 values at a time, written straight into the interleaved ActLayout (and the fixed-point
// limbs of one row of float x, Avx512PrepareFixed below). Included only by x86_avx512_vnni.cpp
// and x86_amx.cpp (it uses vpdpbusd for the group sums). Act-order weights take the generic
// path (a gather per element anyway).
//
// Rows of one layout block are quantized in lockstep, 16 k of every row at a time, and their
// 4-byte units interleaved in registers: the block's 4 x rows units of those k are contiguous,
// so they leave in one or two vector stores (row by row, four 4-byte stores per row and 16 k
// stalled on the layout's lines). The interleave is two saturating packs per 4 rows, the group
// sums come from the stored bytes (a dot product with ones per stored vector), and rows with a
// finite maximum skip the non-finite test.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/simd/x86_avx512.hpp"
#include "gemm/prepare.hpp"

namespace pagedinfer::detail {
namespace {

// The permutation of 16 k (two words' 8) into the int4 nibble order (layout.hpp).
inline __m512i int4_nibble_order() {
  constexpr const int* o = QuantizedWeight::Storage::kInt4NibbleOrder;
  return _mm512_setr_epi32(o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], 8 + o[0], 8 + o[1], 8 + o[2], 8 + o[3],
                           8 + o[4], 8 + o[5], 8 + o[6], 8 + o[7]);
}

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
    const char* x[R];
    float inv[R];
    bool finite = true;  // every row's max|x| is: then no product needs the non-finite test
    for (int r = r0; r < r1; ++r) {
      x[r] = P::x_row(j, b + r);
      inv[r] = P::row_scale(j, b + r);
      finite = finite && std::isfinite(j.row_scale[b + r]);
      std::fill(j.act_sums + (b + r) * w.groups, j.act_sums + (b + r + 1) * w.groups, 0.f);
    }
    const __m512i order = int4_nibble_order();
    const __m512 limit = _mm512_set1_ps(kInt8Limit);
    // Row r's 16 k from i, quantized to int32 in the kernel's order (zero outside [r0, r1)).
    const auto quantized = [&](int r, int64_t i) {
      if (r >= R || r < r0 || r >= r1) return _mm512_setzero_si512();
      __m512 v = _mm512_mul_ps(load_as<Avx512Arch, X>(x[r], i), _mm512_set1_ps(inv[r]));
      if (!finite) v = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_abs_ps(v), limit, _CMP_LT_OQ), v);
      const __m512i q = _mm512_cvtps_epi32(v);  // round to nearest even
      return O == WordOrder::vnni_int4 ? _mm512_permutexvar_epi32(order, q) : q;
    };
    // Two saturating packs turn 4 rows of 16 int32 into bytes with dword 4u + r holding unit u
    // of row r (the packs work per 128-bit lane, and lane u holds k 4u..4u + 3): the layout of a
    // 4-row block. Larger blocks take dword o = u R + r from the packs of rows 0-3 and 4-7.
    const auto pack4 = [&](int r, int64_t i) {
      return _mm512_packs_epi16(_mm512_packs_epi32(quantized(r, i), quantized(r + 1, i)),
                                _mm512_packs_epi32(quantized(r + 2, i), quantized(r + 3, i)));
    };
    alignas(64) int32_t index[32];
    for (int o = 0; o < 32; ++o) index[o] = (o % R < 4 ? 0 : 12) + 4 * (o / R) + o % R;
    const __m512i index0 = _mm512_load_si512(index), index1 = _mm512_load_si512(index + 16);
    const __mmask16 rows0 = valid_dwords<R>(0, r0, r1), rows1 = valid_dwords<R>(16, r0, r1);
    // The integer sums of the current group, taken from the bytes as stored: dword o of a stored
    // vector belongs to row o % R (of the second vector, row (16 + o) % R), so one dot product
    // with ones per stored vector adds each row's 4 bytes into dwords of that row alone.
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i sum0 = _mm512_setzero_si512(), sum1 = _mm512_setzero_si512();
    const auto add_group_sums = [&](int64_t g) {
      for (int r = r0; r < r1; ++r) {
        int32_t sum = _mm512_mask_reduce_add_epi32(valid_dwords<R>(0, r, r + 1), sum0);
        if constexpr (R > 4) sum += _mm512_mask_reduce_add_epi32(valid_dwords<R>(16, r, r + 1), sum1);
        j.act_sums[(b + r) * w.groups + g] += float(sum);
      }
      sum0 = sum1 = _mm512_setzero_si512();
    };
    char* dst = j.act.unit(b, 0);
    int64_t i = 0, group_end = group;
    for (; i + 16 <= k; i += 16, dst += 16 * R) {
      if constexpr (R == 1) {
        const __m128i out = _mm512_cvtepi32_epi8(quantized(0, i));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), out);
        sum0 = _mm512_dpbusd_epi32(sum0, ones, _mm512_zextsi128_si512(out));
      } else if constexpr (R == 4) {
        const __m512i out = pack4(0, i);
        _mm512_mask_storeu_epi32(dst, rows0, out);
        sum0 = _mm512_dpbusd_epi32(sum0, ones, out);
      } else {
        const __m512i low = pack4(0, i), high = pack4(4, i);
        const __m512i out0 = _mm512_permutex2var_epi32(low, index0, high);
        const __m512i out1 = _mm512_permutex2var_epi32(low, index1, high);
        _mm512_mask_storeu_epi32(dst, rows0, out0);
        _mm512_mask_storeu_epi32(dst + 64, rows1, out1);
        sum0 = _mm512_dpbusd_epi32(sum0, ones, out0);
        sum1 = _mm512_dpbusd_epi32(sum1, ones, out1);
      }
      if (i + 16 == group_end) {
        add_group_sums(i / group);
        group_end += group;
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

  // The dwords [o0, o0 + 16) of a block's 16 k that belong to rows [r0, r1) (and exist: 4 R).
  template <int R>
  static __mmask16 valid_dwords(int o0, int r0, int r1) {
    __mmask16 m = 0;
    for (int o = o0; o < std::min(o0 + 16, 4 * R); ++o)
      if (o % R >= r0 && o % R < r1) m = __mmask16(m | (1u << (o - o0)));
    return m;
  }
};

// Fixed-point activations (kernel.hpp's kFixedLimbs), one row at a time in a row-major layout:
// 16 packed k at a time are scaled by 2^(kFixedBits - e) (exact), rounded to int32 (to nearest
// even) and cut into four signed digits, whose saturating packs (which saturate nothing: every
// digit is in [-128, 127]) leave unit u of limb l in dword 4 u + l, the layout the kernel reads.
// The group sums are sum X, exact in double. A non-finite max|x| makes the row scale NaN, so
// the row of y is NaN whatever its digits (then meaningless) sum to.
template <DType X, WordOrder O>
struct Avx512PrepareFixed {
  using P = Prepare<Avx512Arch, X>;

  static void run(const PrepareJob& j, int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) row(j, m);
  }

  static void row(const PrepareJob& j, int64_t m) {
    const auto& w = *j.w;
    const char* x = P::x_row(j, m);
    const float amax = P::max_abs(j, m);
    int e = 0;
    std::frexp(amax, &e);  // amax < 2^e
    e = std::max(e, kFixedMinExponent);
    const bool finite = std::isfinite(amax);
    j.row_scale[m] = finite ? std::ldexp(1.f, e - kFixedBits) : std::numeric_limits<float>::quiet_NaN();
    const __m512 factor = _mm512_set1_ps(finite ? std::ldexp(1.f, kFixedBits - e) : 0.f);
    const __m512i order = int4_nibble_order();
    // The 16 packed k from i as floats: a load, or gathered (act-order, the tail, the padding).
    const auto load16 = [&](int64_t i) -> __m512 {
      if (w.k_order.empty() && i + 16 <= w.k) return load_as<Avx512Arch, X>(x, i);
      alignas(64) float v[16];
      for (int l = 0; l < 16; ++l) {
        const int64_t p = i + l;
        const int64_t src = p >= w.k_packed ? -1 : !w.k_order.empty() ? w.k_order[p] : p < w.k ? p : -1;
        v[l] = src < 0 ? 0.f : scalar_as<X>(x, src);
      }
      return _mm512_load_ps(v);
    };
    // The low byte of v as a signed digit, and v without it, shifted down a digit.
    const auto digit = [](__m512i v) { return _mm512_srai_epi32(_mm512_slli_epi32(v, 24), 24); };
    const auto next = [](__m512i v, __m512i d) { return _mm512_srai_epi32(_mm512_sub_epi32(v, d), 8); };
    float* sums = j.act_sums + m * w.groups;
    char* dst = j.act.unit(m, 0);
    __m512d sum = _mm512_setzero_pd();
    for (int64_t i = 0; i < w.k_packed; i += 16) {
      __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(load16(i), factor));  // |v| <= 2^kFixedBits
      if constexpr (O == WordOrder::vnni_int4) v = _mm512_permutexvar_epi32(order, v);
      sum = _mm512_add_pd(sum, _mm512_add_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)),
                                             _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1))));
      const __m512i d3 = digit(v), v1 = next(v, d3), d2 = digit(v1), v2 = next(v1, d2), d1 = digit(v2);
      const __m512i d0 = next(v2, d1);  // the most significant digit, |d0| <= 64
      const __m512i out = _mm512_packs_epi16(_mm512_packs_epi32(d0, d1), _mm512_packs_epi32(d2, d3));
      // k_packed is a multiple of 8: a last half chunk stores its two units of each limb.
      const int64_t bytes = std::min<int64_t>(16, w.k_packed - i) * kFixedLimbs;
      _mm512_mask_storeu_epi8(dst + i * kFixedLimbs, bytes == 64 ? ~__mmask64(0) : (__mmask64(1) << bytes) - 1, out);
      if ((i + 16) % w.group == 0 || i + 16 >= w.k_packed) {
        sums[i / w.group] = float(_mm512_reduce_add_pd(sum));
        sum = _mm512_setzero_pd();
      }
    }
  }
};

// Prepare<X, O>::run for x's dtype, in the word order of `bits`-bit weights.
template <template <DType, WordOrder> class Prepare, DType X>
PrepareKernel avx512_prepare_for(int bits) {
  return bits == 4 ? &Prepare<X, WordOrder::vnni_int4>::run : &Prepare<X, WordOrder::natural>::run;
}
template <template <DType, WordOrder> class Prepare>
PrepareKernel avx512_prepare_for(int bits, DType x) {
  switch (x) {
    case DType::f32: return avx512_prepare_for<Prepare, DType::f32>(bits);
    case DType::bf16: return avx512_prepare_for<Prepare, DType::bf16>(bits);
    case DType::f16: return avx512_prepare_for<Prepare, DType::f16>(bits);
    default: break;  // validated: activations are float types
  }
  return nullptr;
}

// The preparation for int8 activations, and for fixed-point ones (one row of float x).
inline PrepareKernel avx512_int8_prepare(int bits, DType x) { return avx512_prepare_for<Avx512PrepareI8>(bits, x); }
inline PrepareKernel avx512_fixed_prepare(int bits, DType x) {
  return avx512_prepare_for<Avx512PrepareFixed>(bits, x);
}

}  // namespace
}  // namespace pagedinfer::detail
