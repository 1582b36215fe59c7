// Turns runtime dtypes into template arguments: kernels are instantiated per storage type and
// picked once per call.
#pragma once
#include <type_traits>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer::detail {
namespace {  // internal linkage: ISA TUs include this (see common/scalar_convert.hpp)

template <DType T>
struct DTypeTag {
  static constexpr DType value = T;
};

// f(DTypeTag<a>{}) for a runtime a; a value-initialized result (nullptr) for an invalid dtype.
template <class F>
auto with_dtype(DType a, F&& f) {
  switch (a) {
    case DType::f32: return f(DTypeTag<DType::f32>{});
    case DType::bf16: return f(DTypeTag<DType::bf16>{});
    case DType::f16: return f(DTypeTag<DType::f16>{});
  }
  using R = decltype(f(DTypeTag<DType::f32>{}));
  if constexpr (std::is_void_v<R>) return;  // `void{}` is not an expression clang accepts
  else return R{};
}

// f(DTypeTag<a>{}, DTypeTag<b>{}) for runtime a and b.
template <class F>
auto with_dtypes(DType a, DType b, F&& f) {
  return with_dtype(a, [&](auto ta) { return with_dtype(b, [&](auto tb) { return f(ta, tb); }); });
}

}  // namespace
}  // namespace pagedinfer::detail
