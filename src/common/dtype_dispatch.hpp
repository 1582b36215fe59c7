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

// f(DTypeTag<a>{}) for a runtime float type a (f32, bf16, f16); a value-initialized result
// (nullptr) for any other.
template <class F>
auto with_dtype(DType a, F&& f) {
  switch (a) {
    case DType::f32: return f(DTypeTag<DType::f32>{});
    case DType::bf16: return f(DTypeTag<DType::bf16>{});
    case DType::f16: return f(DTypeTag<DType::f16>{});
    default: break;  // the 8-bit KV types: with_kv_dtype
  }
  using R = decltype(f(DTypeTag<DType::f32>{}));
  if constexpr (std::is_void_v<R>) return;  // `void{}` is not an expression clang accepts
  else return R{};
}

// with_dtype over every KV-cache element type: the float types and the 8-bit ones.
template <class F>
auto with_kv_dtype(DType a, F&& f) {
  switch (a) {
    case DType::f8_e4m3: return f(DTypeTag<DType::f8_e4m3>{});
    case DType::f8_e5m2: return f(DTypeTag<DType::f8_e5m2>{});
    case DType::i8: return f(DTypeTag<DType::i8>{});
    default: return with_dtype(a, f);
  }
}

// f(DTypeTag<a>{}, DTypeTag<b>{}) for runtime a and b.
template <class F>
auto with_dtypes(DType a, DType b, F&& f) {
  return with_dtype(a, [&](auto ta) { return with_dtype(b, [&](auto tb) { return f(ta, tb); }); });
}

}  // namespace
}  // namespace pagedinfer::detail
