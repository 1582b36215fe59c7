// Dot-product instructions of AVX512-VNNI and AVX512-BF16 as inline asm, for the translation
// units compiled with those flags (src/*/x86_avx512_vnni.cpp, x86_avx512_bf16.cpp, x86_amx.cpp).
//
// Why asm: GCC 12 gives the _mm512_dpbusd_epi32 / _mm512_dpbf16_ps intrinsics' accumulators a
// register class limited to zmm0-15 and copies them to and from the upper registers at every
// step of a blocked loop (seen in the generated code); the "v" constraint allows all 32.
#pragma once
#include <immintrin.h>

namespace pagedinfer::detail {
namespace {

// acc (int32 or fp32 lanes) += the lane-wise dot product of w and x (4 u8 x s8, or 2 bf16 x bf16).
struct VnniDot {
  using Acc = __m512i;
  static Acc zero() { return _mm512_setzero_si512(); }
  static Acc dot(Acc acc, __m512i w, __m512i x) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
    return acc;
  }
  static __m512 to_float(Acc a) { return _mm512_cvtepi32_ps(a); }
};
struct Bf16Dot {
  using Acc = __m512;
  static Acc zero() { return _mm512_setzero_ps(); }
  static Acc dot(Acc acc, __m512i w, __m512i x) {
    asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
    return acc;
  }
  static __m512 to_float(Acc a) { return a; }
};

}  // namespace
}  // namespace pagedinfer::detail
