// Activation preparation, written once over xsimd::batch<float, A> and included by each ISA TU
// of src/gemm/ after its common/simd/<isa>.hpp: x rows become the kernel's compute type in
// packed k order (see kernel.hpp), with per-group sums and, for int8, the row scale.
#pragma once
#include <algorithm>
#include <cmath>

#include "common/simd/load.hpp"
#include "gemm/kernel.hpp"

namespace pagedinfer::detail {
namespace {

// Order of k inside one 8-k block of the activation buffer: natural, or the order in which a
// VNNI kernel meets an int4 word's bytes, (0, 4, 1, 5, 2, 6, 3, 7) (layout.hpp).
enum class WordOrder { natural, vnni_int4 };

// Position of natural element e of an 8-block in the buffer.
constexpr int kVnniInt4Position[8] = {0, 2, 4, 6, 1, 3, 5, 7};

template <class A, DType X>
struct Prepare {
  using F = xsimd::batch<float, A>;
  static constexpr int64_t W = F::size;

  // Row m of x as fp32, in packed k order, zero padded: the common first step.
  static void gather_row(const PrepareJob& j, int64_t m, float* out) {
    const auto& w = *j.w;
    const char* x = static_cast<const char*>(j.x) + m * j.x_stride * int64_t(dtype_size(X));
    if (w.k_order.empty()) {
      int64_t i = 0;
      for (; i + W <= w.k; i += W) load_as<A, X>(x, i).store_unaligned(out + i);
      for (; i < w.k; ++i) out[i] = scalar_as<X>(x, i);
      std::fill(out + w.k, out + w.k_packed, 0.f);
    } else {
      for (int64_t i = 0; i < w.k_packed; ++i) out[i] = w.k_order[i] < 0 ? 0.f : scalar_as<X>(x, w.k_order[i]);
    }
  }

  static float sum(const float* v, int64_t n) {
    F acc(0.f);
    int64_t i = 0;
    for (; i + W <= n; i += W) acc += F::load_unaligned(v + i);
    float s = xsimd::hadd(acc);
    for (; i < n; ++i) s += v[i];
    return s;
  }

  // fp32 compute: the gathered row is the buffer.
  static void f32(const PrepareJob& j, int64_t m0, int64_t m1) {
    const auto& w = *j.w;
    for (int64_t m = m0; m < m1; ++m) {
      float* a = static_cast<float*>(j.act) + m * j.act_stride;
      gather_row(j, m, a);
      for (int64_t g = 0; g < w.groups; ++g) j.act_sums[m * w.groups + g] = sum(a + g * w.group, w.group);
    }
  }

  // bf16 compute (x is bf16, so the values are exact): a copy; sums in fp32.
  static void bf16(const PrepareJob& j, int64_t m0, int64_t m1) {
    const auto& w = *j.w;
    for (int64_t m = m0; m < m1; ++m) {
      const uint16_t* x = static_cast<const uint16_t*>(j.x) + m * j.x_stride;
      uint16_t* a = static_cast<uint16_t*>(j.act) + m * j.act_stride;
      if (w.k_order.empty()) {
        std::copy(x, x + w.k, a);
        std::fill(a + w.k, a + w.k_packed, uint16_t(0));
      } else {
        for (int64_t i = 0; i < w.k_packed; ++i) a[i] = w.k_order[i] < 0 ? uint16_t(0) : x[w.k_order[i]];
      }
      for (int64_t g = 0; g < w.groups; ++g) {
        F acc(0.f);
        int64_t i = g * w.group;
        const int64_t end = i + w.group;
        for (; i + W <= end; i += W) acc += load_as<A, DType::bf16>(a, i);
        float s = xsimd::hadd(acc);
        for (; i < end; ++i) s += bf16_bits_to_float(a[i]);
        j.act_sums[m * w.groups + g] = s;
      }
    }
  }

  // One value of the int8 rule of linear.hpp; a non-finite product (x or max|x| not finite)
  // becomes 0 and the row scale carries the inf/NaN into y.
  static int8_t quantize_one(float x, float inv) {
    const float v = x * inv;
    return std::fabs(v) <= 127.f ? int8_t(std::nearbyint(v)) : int8_t(0);
  }

  // int8 compute: a = round(x * 127 / max|x|), row scale max|x| / 127, exact int sums.
  template <WordOrder O>
  static void i8(const PrepareJob& j, int64_t m0, int64_t m1) {
    const auto& w = *j.w;
    const auto position = [](int64_t i) {
      return O == WordOrder::natural ? i : (i & ~int64_t(7)) | kVnniInt4Position[i & 7];
    };
    for (int64_t m = m0; m < m1; ++m) {
      const char* x = static_cast<const char*>(j.x) + m * j.x_stride * int64_t(dtype_size(X));
      int8_t* a = static_cast<int8_t*>(j.act) + m * j.act_stride;
      F vmax(0.f);
      int64_t i = 0;
      for (; i + W <= w.k; i += W) vmax = xsimd::max(vmax, xsimd::abs(load_as<A, X>(x, i)));
      alignas(64) float lanes[W];
      vmax.store_aligned(lanes);
      float amax = *std::max_element(lanes, lanes + W);
      for (; i < w.k; ++i) amax = std::max(amax, std::fabs(scalar_as<X>(x, i)));
      const float inv = amax > 0.f && std::isfinite(amax) ? 127.f / amax : 0.f;
      j.row_scale[m] = amax / 127.f;
      if (w.k_order.empty()) {
        alignas(64) int32_t q[W];
        const F vinv(inv), limit(127.f);
        for (i = 0; i + W <= w.k; i += W) {
          const F v = load_as<A, X>(x, i) * vinv;
          xsimd::nearbyint_as_int(xsimd::select(xsimd::abs(v) <= limit, v, F(0.f))).store_aligned(q);
          for (int64_t l = 0; l < W; ++l) a[position(i + l)] = int8_t(q[l]);
        }
        for (; i < w.k; ++i) a[position(i)] = quantize_one(scalar_as<X>(x, i), inv);
        for (; i < w.k_packed; ++i) a[position(i)] = 0;
      } else {
        for (i = 0; i < w.k_packed; ++i)
          a[position(i)] = w.k_order[i] < 0 ? int8_t(0) : quantize_one(scalar_as<X>(x, w.k_order[i]), inv);
      }
      for (int64_t g = 0; g < w.groups; ++g) {
        int32_t s = 0;
        for (int64_t e = g * w.group; e < (g + 1) * w.group; ++e) s += a[e];
        j.act_sums[m * w.groups + g] = float(s);
      }
    }
  }
};

}  // namespace
}  // namespace pagedinfer::detail
