// SimdIsa for aarch64 NEON (baseline of ARMv8-A, fp16 conversion included).
#pragma once
#include <arm_neon.h>

#include <cstring>

#include "common/simd/load.hpp"

namespace pagedinfer::detail {

template <>
struct SimdIsa<xsimd::neon64> {
  using B = xsimd::batch<float, xsimd::neon64>;
  static B bf16(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
  static B f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
  static B f16_low(xsimd::batch<uint32_t, xsimd::neon64> u) { return vcvt_f32_f16(vreinterpret_f16_u16(vmovn_u32(u))); }
  static xsimd::batch<int32_t, xsimd::neon64> s8(const int8_t* p) {
    int32_t four;
    std::memcpy(&four, p, 4);
    return vmovl_s16(vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(four)))));
  }
  static xsimd::batch<int32_t, xsimd::neon64> u8(const uint8_t* p) {
    int32_t four;
    std::memcpy(&four, p, 4);
    return vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(vreinterpret_u8_s32(vdup_n_s32(four))))));
  }
  static void store_bf16(uint16_t* p, B x) {
    const uint32x4_t u = vreinterpretq_u32_f32(x);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t r = vaddq_u32(u, vaddq_u32(lsb, vdupq_n_u32(0x7fff)));
    const uint32x4_t num = vceqq_f32(x, x);  // all ones unless NaN
    const uint32x4_t sel = vbslq_u32(num, r, vorrq_u32(u, vdupq_n_u32(0x400000)));
    vst1_u16(p, vshrn_n_u32(sel, 16));
  }
  static void store_f16(uint16_t* p, B x) { vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(x))); }
  static B swap_pairs(B x) { return vrev64q_f32(x); }
  // xsimd 8.1 haddp; not run by this project's x86 CI (its avx512 version is wrong, see x86_avx512.hpp)
  static B haddp(const B* rows) { return xsimd::haddp(rows); }
  static float hmax(B x) { return vmaxvq_f32(x); }
  static uint64_t mask_bits(xsimd::batch_bool<float, xsimd::neon64> b) {
    const uint32x4_t bit = {1u, 2u, 4u, 8u};
    return vaddvq_u32(vandq_u32(b, bit));
  }
};

}  // namespace pagedinfer::detail
