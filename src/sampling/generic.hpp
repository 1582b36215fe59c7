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

  template <DType X, bool kStore>
  static int64_t load_scaled_as(const void* x, int64_t n, float divisor, float* out, float* max, float* block_max) {
    static_assert(kMaxBlock % W == 0, "blocks of whole vectors");
    const B d(divisor), inf(kInf);
    int64_t bad = -1;
    const auto check = [&](int64_t at, float v) {
      if (bad < 0 && (std::isnan(v) || v == kInf)) bad = at;
    };
    float m = -kInf;
    for (int64_t b0 = 0; b0 < n; b0 += kMaxBlock) {
      const int64_t end = std::min(n, b0 + kMaxBlock);
      B bm(-kInf);
      int64_t i = b0;
      for (; i + W <= end; i += W) {
        const B v = load_as<A, X>(x, i);
        if (xsimd::any(xsimd::isnan(v) | (v == inf)))
          for (int64_t j = 0; j < W; ++j) check(i + j, scalar_as<X>(x, i + j));
        const B q = v / d;
        if constexpr (kStore) q.store_unaligned(out + i);
        bm = xsimd::max(bm, q);
      }
      float block = SimdIsa<A>::hmax(bm);
      for (; i < end; ++i) {
        const float v = scalar_as<X>(x, i);
        check(i, v);
        const float q = v / divisor;
        if constexpr (kStore) out[i] = q;
        block = std::max(block, q);
      }
      if (block_max) block_max[b0 / kMaxBlock] = block;
      m = std::max(m, block);
    }
    *max = m;
    return bad;
  }

  static int64_t load_scaled(const void* x, DType dtype, int64_t n, float divisor, float* out, float* max,
                             float* block_max) {
    const auto run = [&](auto store) {
      constexpr bool kStore = decltype(store)::value;
      switch (dtype) {
        case DType::f32: return load_scaled_as<DType::f32, kStore>(x, n, divisor, out, max, block_max);
        case DType::bf16: return load_scaled_as<DType::bf16, kStore>(x, n, divisor, out, max, block_max);
        case DType::f16: return load_scaled_as<DType::f16, kStore>(x, n, divisor, out, max, block_max);
        default: return int64_t(-1);  // 8-bit types: validation refuses them for logits
      }
    };
    return out ? run(std::true_type()) : run(std::false_type());
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
      for (uint64_t bits = SimdIsa<A>::mask_bits(B::load_unaligned(v + i) >= tb); bits != 0; bits &= bits - 1)
        out[count++] = int32_t(i + __builtin_ctzll(bits));
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
