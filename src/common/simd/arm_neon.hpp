// SimdIsa for aarch64 NEON (baseline of ARMv8-A, fp16 conversion included).
#pragma once
#include <arm_neon.h>

#include "common/simd/load.hpp"

namespace pagedinfer::detail {

template <>
struct SimdIsa<xsimd::neon64> {
  using B = xsimd::batch<float, xsimd::neon64>;
  static B bf16(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
  static B f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  // xsimd 8.1 haddp; not run by this project's x86 CI (its avx512 version is wrong, see x86_avx512.hpp)
  static B haddp(const B* rows) { return xsimd::haddp(rows); }
};

}  // namespace pagedinfer::detail
