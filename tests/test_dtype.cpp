// Scalar conversions: exact widening, round-to-nearest-even narrowing, special values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "pagedinfer/pagedinfer.hpp"

using namespace pagedinfer;

namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(Dtype, SizesAndNames) {
  EXPECT_EQ(dtype_size(DType::f32), 4u);
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_size(DType::f16), 2u);
  EXPECT_STREQ(dtype_name(DType::f16), "f16");
  EXPECT_STREQ(dtype_name(static_cast<DType>(7)), "invalid");
}

TEST(Dtype, F16RoundTripsEveryBitPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = f16_to_float(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(f))));
      continue;
    }
    ASSERT_EQ(float_to_f16(f), h) << std::hex << h;
  }
  EXPECT_EQ(f16_to_float(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_float(0x7bff), 65504.0f);
}

TEST(Dtype, F16NarrowingRoundsToNearestEven) {
  EXPECT_EQ(float_to_f16(65519.f), 0x7bff);  // below the halfway point to 65536
  EXPECT_EQ(float_to_f16(65520.f), 0x7c00);  // ties to even: overflow to inf
  EXPECT_EQ(float_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie, even stays
  EXPECT_EQ(float_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie, odd rounds up
  EXPECT_EQ(float_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal: tie to 0
  EXPECT_EQ(float_to_f16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(float_to_f16(std::numeric_limits<float>::infinity()), 0x7c00);
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) uint16_t hardware_f16(float x) {
  return uint16_t(_cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT));
}

TEST(Dtype, F16NarrowingMatchesF16cHardware) {
  // The library's detection, not __builtin_cpu_supports("f16c"), which clang 14 does not know.
  if (!(detected_features() & feature_bit(CpuFeature::f16c))) GTEST_SKIP() << "no F16C";
  std::mt19937 rng(1);
  for (int i = 0; i < 2000000; ++i) {
    const float x = from_bits(rng());
    if (std::isnan(x)) continue;
    ASSERT_EQ(float_to_f16(x), hardware_f16(x)) << x;
  }
}
#endif

TEST(Dtype, Bf16RoundsToNearestEvenAndKeepsNan) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808000)), 0x3f80);  // tie, even stays
  EXPECT_EQ(float_to_bf16(from_bits(0x3f818000)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(float_to_bf16(from_bits(0x3f808001)), 0x3f81);
  EXPECT_EQ(float_to_bf16(from_bits(0x7f7fffff)), 0x7f80);  // max float rounds to inf
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(from_bits(0x7f800001)))));  // NaN never becomes inf
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_float(uint16_t(b));
    if (!std::isnan(f)) ASSERT_EQ(float_to_bf16(f), b);
  }
}

TEST(Dtype, ConvertArrays) {
  const float src[3] = {1.5f, -2.25f, 65504.f};
  uint16_t h[3];
  float back[3];
  convert(src, DType::f32, h, DType::f16, 3);
  convert(h, DType::f16, back, DType::f32, 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(back[i], src[i]);
  EXPECT_THROW(convert(nullptr, DType::f32, h, DType::f16, 1), Error);
  EXPECT_THROW(convert(src, static_cast<DType>(5), h, DType::f16, 1), Error);
}

}  // namespace
