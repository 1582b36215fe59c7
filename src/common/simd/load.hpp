// What kernels need beyond xsimd 8.1, per architecture: loads of W storage-type elements as
// one xsimd::batch<float, A>, and a transposing horizontal add. SimdIsa<A> is specialized once
// per architecture in the ISA headers beside this one (x86_sse2.hpp, x86_avx2.hpp,
// x86_avx512.hpp, arm_neon.hpp), each included only by the TUs compiled for that ISA.
// load_as<A, T>() is what kernels call to load.
#pragma once
#include <cstdint>

#include <xsimd/xsimd.hpp>

#include "common/scalar_convert.hpp"
#include "pagedinfer/dtype.hpp"

namespace pagedinfer::detail {

template <class A>
struct SimdIsa;
// static batch<float, A> bf16(const uint16_t* p);   W bf16 values from p, exact
// static batch<float, A> f16(const uint16_t* p);    W fp16 values from p, exact
// static batch<float, A> haddp(const batch* rows);  lane i = sum of the lanes of rows[i]

namespace {

template <class A, DType T>
inline xsimd::batch<float, A> load_as(const void* row, int64_t i) {
  if constexpr (T == DType::f32) {
    return xsimd::batch<float, A>::load_unaligned(static_cast<const float*>(row) + i);
  } else if constexpr (T == DType::bf16) {
    return SimdIsa<A>::bf16(static_cast<const uint16_t*>(row) + i);
  } else {
    return SimdIsa<A>::f16(static_cast<const uint16_t*>(row) + i);
  }
}

template <DType T>
inline float scalar_as(const void* row, int64_t i) {
  if constexpr (T == DType::f32) {
    return static_cast<const float*>(row)[i];
  } else if constexpr (T == DType::bf16) {
    return bf16_bits_to_float(static_cast<const uint16_t*>(row)[i]);
  } else {
    return f16_bits_to_float(static_cast<const uint16_t*>(row)[i]);
  }
}

// Brings [p, p + bytes) towards L1 ahead of use: paged KV rows are scattered, so the hardware
// prefetchers cannot guess the next page.
inline void prefetch_bytes(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 2);
}

}  // namespace
}  // namespace pagedinfer::detail
