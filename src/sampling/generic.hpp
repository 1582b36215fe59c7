// The sampling passes, written once over xsimd::batch<float, A> and included by each ISA TU of
// src/sampling/ after its common/simd/<isa>.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

#include "common/simd/load.hpp"
#include "sampling/kernel.hpp"

namespace pagedinfer::detail {
namespace {

template <class A>
struct SamplingPasses {
  using B = xsimd::batch<float, A>;
  static constexpr int64_t W = B::size;
  static constexpr float kInf = std::numeric_limits<float>::infinity();

  template <DType X>
  static int64_t load_scaled_as(const void* x, int64_t n, float divisor, float* out, float* max) {
    const B d(divisor), inf(kInf);
    B m(-kInf);
    int64_t i = 0, bad = -1;
    const auto check = [&](int64_t at, float v) {
      if (bad < 0 && (std::isnan(v) || v == kInf)) bad = at;
    };
    for (; i + W <= n; i += W) {
      const B v = load_as<A, X>(x, i);
      if (xsimd::any(xsimd::isnan(v) | (v == inf)))
        for (int64_t j = 0; j < W; ++j) check(i + j, scalar_as<X>(x, i + j));
      const B q = v / d;
      q.store_unaligned(out + i);
      m = xsimd::max(m, q);
    }
    float tail = -kInf;
    for (; i < n; ++i) {
      const float v = scalar_as<X>(x, i);
      check(i, v);
      out[i] = v / divisor;
      tail = std::max(tail, out[i]);
    }
    *max = std::max(SimdIsa<A>::hmax(m), tail);
    return bad;
  }

  static int64_t load_scaled(const void* x, DType dtype, int64_t n, float divisor, float* out, float* max) {
    switch (dtype) {
      case DType::f32: return load_scaled_as<DType::f32>(x, n, divisor, out, max);
      case DType::bf16: return load_scaled_as<DType::bf16>(x, n, divisor, out, max);
      case DType::f16: return load_scaled_as<DType::f16>(x, n, divisor, out, max);
    }
    return -1;
  }

  static float max(const float* v, int64_t n) {
    B m(-kInf);
    int64_t i = 0;
    for (; i + W <= n; i += W) m = xsimd::max(m, B::load_unaligned(v + i));
    float tail = -kInf;
    for (; i < n; ++i) tail = std::max(tail, v[i]);
    return std::max(SimdIsa<A>::hmax(m), tail);
  }

  static int64_t select_at_least(const float* v, int64_t n, float t, int32_t* out) {
    const B tb(t);
    int64_t count = 0, i = 0;
    for (; i + W <= n; i += W)
      if (xsimd::any(B::load_unaligned(v + i) >= tb))
        for (int64_t j = i; j < i + W; ++j)
          if (v[j] >= t) out[count++] = int32_t(j);
    for (; i < n; ++i)
      if (v[i] >= t) out[count++] = int32_t(i);
    return count;
  }

  static B weight(B v, B shift, B floor) { return xsimd::select(v >= floor, xsimd::exp(v - shift), B(0.f)); }

  // The last n % W values padded with -inf (weight 0), so that every weight comes from weight().
  static B tail(const float* v, int64_t n) {
    alignas(64) float pad[W];
    std::fill(pad, pad + W, -kInf);
    std::copy(v, v + n, pad);
    return B::load_aligned(pad);
  }

  static void weights(const float* v, int64_t n, float shift, float floor, float* w) {
    const B s(shift), f(floor);
    int64_t i = 0;
    for (; i + W <= n; i += W) weight(B::load_unaligned(v + i), s, f).store_unaligned(w + i);
    if (i < n) {
      alignas(64) float last[W];
      weight(tail(v + i, n - i), s, f).store_aligned(last);
      std::copy(last, last + (n - i), w + i);
    }
  }

  static void block_weights(const float* v, int64_t n, float shift, float floor, float* sums) {
    const B s(shift), f(floor);
    for (int64_t b = 0; b * kWeightBlock < n; ++b) {
      const int64_t begin = b * kWeightBlock, end = std::min(n, begin + kWeightBlock);
      B acc(0.f);
      int64_t i = begin;
      for (; i + W <= end; i += W) acc += weight(B::load_unaligned(v + i), s, f);
      if (i < end) acc += weight(tail(v + i, end - i), s, f);
      sums[b] = xsimd::hadd(acc);
    }
  }
};

template <class A>
SamplingKernel sampling_kernel_for() {
  using P = SamplingPasses<A>;
  return {&P::load_scaled, &P::max, &P::select_at_least, &P::weights, &P::block_weights};
}

}  // namespace
}  // namespace pagedinfer::detail
