// The quantizing row kernel, written once over xsimd::batch<float, A>: codes computed a vector
// at a time with the bit arithmetic of the scalar conversions (common/scalar_convert.hpp), the
// tail through those scalar conversions, so every lane rounds as they do.
#pragma once
#include <cmath>
#include <type_traits>

#include "common/simd/load.hpp"
#include "quantize_kv/kernel.hpp"

namespace pagedinfer::detail {
namespace {  // internal linkage: every ISA TU gets its own copy (see scalar_convert.hpp)

// fp8 codes of x (sign in bit 7): float_to_f8_bits<F> (common/scalar_convert.hpp) lane by lane.
template <class A, class F>
xsimd::batch<int32_t, A> f8_codes(xsimd::batch<float, A> x) {
  using I = xsimd::batch<int32_t, A>;
  using B = xsimd::batch<float, A>;
  const I u = xsimd::bitwise_cast<I>(x);
  const I a = u & I(0x7fffffff);
  I v = a - I(int32_t(F::kRebias));
  v = (v + I((1 << (F::kShift - 1)) - 1) + ((v >> F::kShift) & I(1))) >> F::kShift;
  const I sub = xsimd::bitwise_cast<I>(xsimd::bitwise_cast<B>(a) + B(kF8Grid<F>)) - I(int32_t(kF8GridBits<F>));
  I code = xsimd::select(a < I(int32_t(F::kMinNormalBits)), sub, v);
  code = xsimd::select(a >= I(int32_t(F::kMaxBits)), I(int32_t(F::kMaxCode)), code);
  code = xsimd::select(a > I(0x7f800000), I(int32_t(F::kNanCode)), code);
  return code | ((u >> 24) & I(0x80));
}

template <class A, DType T>
float quantize_row(const float* x, int32_t n, float scale, void* dst) {
  using F = xsimd::batch<float, A>;
  using I = xsimd::batch<int32_t, A>;
  constexpr int32_t W = int32_t(F::size);
  uint8_t* out = static_cast<uint8_t*>(dst);
  if constexpr (T == DType::i8) {
    F amax(0.f), finite(0.f);  // finite: sum of x * 0, NaN once any x is not finite
    int32_t i = 0;
    for (; i + W <= n; i += W) {
      const F v = F::load_unaligned(x + i);
      amax = xsimd::max(amax, xsimd::abs(v));
      finite += v * F(0.f);
    }
    float m = SimdIsa<A>::hmax(amax), bad = xsimd::hadd(finite);
    for (; i < n; ++i) m = std::max(m, std::fabs(x[i])), bad += x[i] * 0.f;
    if (bad != 0.f || m == 0.f) {  // NaN != 0: a non-finite row; or a row of zeros
      for (int32_t j = 0; j < n; ++j) out[j] = 0;
      return bad != 0.f ? NAN : 0.f;
    }
    scale = m / 127.f;
  }
  const F s(scale);
  alignas(64) int32_t codes[W];
  int32_t i = 0;
  for (; i + W <= n; i += W) {
    const F q = F::load_unaligned(x + i) / s;
    I c;
    if constexpr (T == DType::i8) c = xsimd::max(I(-127), xsimd::min(I(127), xsimd::nearbyint_as_int(q)));
    else c = f8_codes<A, std::conditional_t<T == DType::f8_e4m3, F8E4M3, F8E5M2>>(q);
    c.store_aligned(codes);
    for (int32_t k = 0; k < W; ++k) out[i + k] = uint8_t(codes[k]);
  }
  for (; i < n; ++i) {
    const float q = x[i] / scale;
    if constexpr (T == DType::i8) out[i] = uint8_t(int8_t(std::max(-127.f, std::min(127.f, std::nearbyint(q)))));
    else if constexpr (T == DType::f8_e4m3) out[i] = float_to_f8_e4m3_bits(q);
    else out[i] = float_to_f8_e5m2_bits(q);
  }
  return scale;
}

template <class A>
QuantizeRowKernel select_quantize_kv_kernel(DType kv) {
  switch (kv) {
    case DType::i8: return &quantize_row<A, DType::i8>;
    case DType::f8_e4m3: return &quantize_row<A, DType::f8_e4m3>;
    case DType::f8_e5m2: return &quantize_row<A, DType::f8_e5m2>;
    default: return nullptr;
  }
}

}  // namespace
}  // namespace pagedinfer::detail
