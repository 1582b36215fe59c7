// Activation preparation, written once over xsimd::batch<float, A> and included by each ISA TU
// of src/gemm/ after its common/simd/<isa>.hpp: x rows become the kernel's compute type in
// packed k order and the kernel's ActLayout (kernel.hpp), with per-group sums and, for int8,
// the row scale.
#pragma once
#include <algorithm>
#include <cmath>

#include "common/simd/load.hpp"
#include "gemm/kernel.hpp"

namespace pagedinfer::detail {
namespace {

// Order of k inside each block of a row, as the kernel meets the weight word's elements
// (layout.hpp): natural, or per 8 k the nibble order of int4 words for VNNI and AMX int8.
enum class WordOrder { natural, vnni_int4 };

template <WordOrder O>
inline int64_t ordered_position(int64_t i) {
  if constexpr (O == WordOrder::vnni_int4)
    return (i & ~int64_t(7)) | QuantizedWeight::Storage::int4_nibble_position(int(i & 7));
  else return i;
}

template <class A, DType X>
struct Prepare {
  using F = xsimd::batch<float, A>;
  static constexpr int64_t W = F::size;

  static const char* x_row(const PrepareJob& j, int64_t m) {
    return static_cast<const char*>(j.x) + m * j.x_stride * int64_t(dtype_size(X));
  }

  // Sum of each group of row m of x, in packed k order, in fp32 (0 for 16-bit weights, which
  // have no offsets to multiply it).
  static void group_sums(const PrepareJob& j, int64_t m, float* sums) {
    const auto& w = *j.w;
    if (!w.quantized()) {
      sums[0] = 0.f;
      return;
    }
    const char* x = x_row(j, m);
    for (int64_t g = 0; g < w.groups; ++g) {
      const int64_t begin = g * w.group, end = std::min(begin + w.group, w.k);
      float s = 0.f;
      if (w.k_order.empty()) {
        F acc(0.f);
        int64_t i = begin;
        for (; i + W <= end; i += W) acc += load_as<A, X>(x, i);
        s = xsimd::hadd(acc);
        for (; i < end; ++i) s += scalar_as<X>(x, i);
      } else {
        for (int64_t i = begin; i < begin + w.group; ++i)
          if (w.k_order[i] >= 0) s += scalar_as<X>(x, w.k_order[i]);
      }
      sums[g] = s;
    }
  }

  // fp32 compute, for the generic kernels, which read row-major (act.rows == 1).
  static void f32(const PrepareJob& j, int64_t m0, int64_t m1) {
    const auto& w = *j.w;
    for (int64_t m = m0; m < m1; ++m) {
      const char* x = x_row(j, m);
      float* a = reinterpret_cast<float*>(j.act.unit(m, 0));
      if (w.k_order.empty()) {
        int64_t i = 0;
        for (; i + W <= w.k; i += W) load_as<A, X>(x, i).store_unaligned(a + i);
        for (; i < w.k; ++i) a[i] = scalar_as<X>(x, i);
        std::fill(a + w.k, a + w.k_packed, 0.f);
      } else {
        for (int64_t i = 0; i < w.k_packed; ++i) a[i] = w.k_order[i] < 0 ? 0.f : scalar_as<X>(x, w.k_order[i]);
      }
      group_sums(j, m, j.act_sums + m * w.groups);
    }
  }

  // bf16 compute (x is bf16, so the values are exact): a copy into pairs, natural order.
  static void bf16(const PrepareJob& j, int64_t m0, int64_t m1) {
    const auto& w = *j.w;
    for (int64_t m = m0; m < m1; ++m) {
      const auto* x = reinterpret_cast<const uint16_t*>(x_row(j, m));
      if (j.act.rows == 1 && w.k_order.empty()) {  // row-major, natural k: the row and zeros
        auto* a = reinterpret_cast<uint16_t*>(j.act.unit(m, 0));
        std::copy(x, x + w.k, a);
        std::fill(a + w.k, a + w.k_packed, uint16_t(0));
        group_sums(j, m, j.act_sums + m * w.groups);
        continue;
      }
      for (int64_t i = 0; i < w.k_packed; ++i) {
        const int64_t src = w.k_order.empty() ? (i < w.k ? i : -1) : w.k_order[i];
        reinterpret_cast<uint16_t*>(j.act.unit(m, i / 2))[i % 2] = src < 0 ? uint16_t(0) : x[src];
      }
      group_sums(j, m, j.act_sums + m * w.groups);
    }
  }

  // One value of the int8 rule of linear.hpp; a non-finite product (x or max|x| not finite)
  // becomes 0 (kInt8Limit) and the row scale carries the inf/NaN into y.
  static int8_t quantize_one(float x, float inv) {
    const float v = x * inv;
    return std::fabs(v) < kInt8Limit ? int8_t(std::nearbyint(v)) : int8_t(0);
  }

  // max|x| of row m, taken over the bits of |x| as integers, which order NaN above inf above
  // every finite value: a NaN anywhere in the row makes it NaN, where a float max would drop it.
  static float max_abs(const PrepareJob& j, int64_t m) {
    using I = xsimd::batch<int32_t, A>;
    const char* x = x_row(j, m);
    const I magnitude(0x7fffffff);
    const auto bits = [&](int64_t i) { return xsimd::bitwise_cast<I>(load_as<A, X>(x, i)) & magnitude; };
    I vmax(0), vmax2(0);  // two independent chains of max, each waiting on its previous
    int64_t i = 0;
    for (; i + 2 * W <= j.w->k; i += 2 * W) {
      vmax = xsimd::max(vmax, bits(i));
      vmax2 = xsimd::max(vmax2, bits(i + W));
    }
    for (; i + W <= j.w->k; i += W) vmax = xsimd::max(vmax, bits(i));
    vmax = xsimd::max(vmax, vmax2);
    alignas(64) int32_t lanes[W];
    vmax.store_aligned(lanes);
    int32_t largest = *std::max_element(lanes, lanes + W);
    for (; i < j.w->k; ++i) largest = std::max(largest, int32_t(bits_of(scalar_as<X>(x, i)) & 0x7fffffffu));
    return float_of(uint32_t(largest));
  }

  // Sets row m's scale, max|x| / 127, and returns the factor 127 / max|x| (0 for a zero or
  // non-finite maximum, max_abs: a NaN anywhere in the row makes the scale NaN).
  static float row_scale(const PrepareJob& j, int64_t m) {
    const float amax = max_abs(j, m);
    j.row_scale[m] = amax / 127.f;
    return amax > 0.f && std::isfinite(amax) ? 127.f / amax : 0.f;
  }

  // Stores a[i] of row m at its place in the layout.
  template <WordOrder O>
  static void put(const PrepareJob& j, int64_t m, int64_t i, int8_t v) {
    const int64_t p = ordered_position<O>(i);
    reinterpret_cast<int8_t*>(j.act.unit(m, p / 4))[p % 4] = v;
  }

  // int8 compute: a = round(x * 127 / max|x|), row scale max|x| / 127, exact int sums.
  template <WordOrder O>
  static void i8(const PrepareJob& j, int64_t m0, int64_t m1) {
    const auto& w = *j.w;
    for (int64_t m = m0; m < m1; ++m) {
      const char* x = x_row(j, m);
      const auto put = [&](int64_t i, int8_t v) { Prepare::put<O>(j, m, i, v); };
      const float inv = row_scale(j, m);
      int64_t i = 0;
      float* sums = j.act_sums + m * w.groups;
      std::fill(sums, sums + w.groups, 0.f);
      if (w.k_order.empty()) {
        alignas(64) int32_t q[W];
        const F vinv(inv), limit(kInt8Limit);
        for (i = 0; i + W <= w.k; i += W) {
          const F v = load_as<A, X>(x, i) * vinv;
          xsimd::nearbyint_as_int(xsimd::select(xsimd::abs(v) < limit, v, F(0.f))).store_aligned(q);
          int32_t s = 0;
          for (int64_t l = 0; l < W; ++l) {
            put(i + l, int8_t(q[l]));
            s += q[l];
          }
          sums[i / w.group] += float(s);  // W divides the group (32, 64, 128) or the group is the row
        }
        for (; i < w.k; ++i) {
          const int8_t v = quantize_one(scalar_as<X>(x, i), inv);
          put(i, v);
          sums[i / w.group] += float(v);
        }
        for (; i < w.k_packed; ++i) put(i, 0);
      } else {
        for (i = 0; i < w.k_packed; ++i) {
          const int8_t v = w.k_order[i] < 0 ? int8_t(0) : quantize_one(scalar_as<X>(x, w.k_order[i]), inv);
          put(i, v);
          sums[i / w.group] += float(v);
        }
      }
    }
  }
};

}  // namespace
}  // namespace pagedinfer::detail
