// The conversion kernel, written once over xsimd::batch<float, A>: whole vectors through the
// ISA's exact widening and rounding stores (common/simd/load.hpp), the tail in scalar code that
// rounds the same way.
#pragma once
#include "common/dtype_dispatch.hpp"
#include "common/simd/load.hpp"
#include "convert/kernel.hpp"

namespace pagedinfer::detail {
namespace {  // internal linkage: every ISA TU gets its own copy (see scalar_convert.hpp)

template <class A, DType S, DType D>
void convert_values(const void* src, void* dst, std::size_t n) {
  constexpr std::size_t W = xsimd::batch<float, A>::size;
  const int64_t count = int64_t(n);
  int64_t i = 0;
  for (; i + int64_t(2 * W) <= count; i += int64_t(2 * W)) {  // two loads in flight per step
    const auto a = load_as<A, S>(src, i), b = load_as<A, S>(src, i + int64_t(W));
    store_as<A, D>(dst, i, a);
    store_as<A, D>(dst, i + int64_t(W), b);
  }
  for (; i + int64_t(W) <= count; i += int64_t(W)) store_as<A, D>(dst, i, load_as<A, S>(src, i));
  for (; i < count; ++i) store_scalar_as<D>(dst, i, scalar_as<S>(src, i));
}

template <class A>
ConvertKernel select_convert_kernel(DType src, DType dst) {
  return with_dtypes(src, dst, [](auto s, auto d) -> ConvertKernel {
    return &convert_values<A, decltype(s)::value, decltype(d)::value>;
  });
}

}  // namespace
}  // namespace pagedinfer::detail
