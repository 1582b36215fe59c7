// Scalar conversions: exact widening, round-to-nearest-even narrowing, special values; the
// vectorized convert() kernels against them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "pagedinfer/pagedinfer.hpp"
#include "test_util.hpp"

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

// Element i of a byte buffer of dtype t, through the scalar conversions only.
float scalar_at(const uint8_t* p, DType t, std::size_t i) {
  float x;
  if (t == DType::f32) {
    std::memcpy(&x, p + i * 4, 4);
    return x;
  }
  uint16_t b;
  std::memcpy(&b, p + i * 2, 2);
  return t == DType::bf16 ? bf16_to_float(b) : f16_to_float(b);
}

// Every convert kernel the host runs, every dtype pair, every length up to 80 at odd offsets:
// each element as the scalar conversion gives it (bit for bit; NaN only as NaN).
TEST(Convert, EveryKernelMatchesTheScalarConversions) {
  const DType types[] = {DType::f32, DType::bf16, DType::f16};
  std::mt19937 rng(9);
  std::vector<float> values;
  for (float x : {0.f, -0.f, 1.f, 65504.f, 65519.f, 65520.f, -65536.f, 3.3961776e38f, 3.4028235e38f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                  std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::denorm_min(), 5.96e-8f,
                  2.98e-8f, 6.1e-5f, 1.00390625f, 1.01171875f, 1.00048828125f})
    values.push_back(x);
  std::uniform_int_distribution<uint32_t> bits;
  while (values.size() < 97) values.push_back(from_bits(bits(rng)));  // every exponent, half of them huge
  for (DType src : types)
    for (DType dst : types) {
      std::vector<uint8_t> in(values.size() * 4 + 4), want(values.size() * 4 + 4);
      for (std::size_t i = 0; i < values.size(); ++i) {  // the source as its dtype stores the values
        const std::size_t es = dtype_size(src);
        if (src == DType::f32) std::memcpy(in.data() + i * es, &values[i], 4);
        else {
          const uint16_t b = src == DType::bf16 ? float_to_bf16(values[i]) : float_to_f16(values[i]);
          std::memcpy(in.data() + i * es, &b, 2);
        }
      }
      for (std::size_t i = 0; i < values.size(); ++i) {  // the scalar route, element by element
        const float x = scalar_at(in.data(), src, i);
        if (dst == DType::f32) std::memcpy(want.data() + i * 4, &x, 4);
        else {
          const uint16_t b = dst == DType::bf16 ? float_to_bf16(x) : float_to_f16(x);
          std::memcpy(want.data() + i * 2, &b, 2);
        }
      }
      testutil::for_each_kernel("convert", [&] { return convert_kernel_name(src, dst); }, [&](const std::string& name) {
        for (std::size_t off : {0u, 1u})
          for (std::size_t n = 0; n + off <= 81; ++n) {
            const std::size_t es = dtype_size(dst);
            std::vector<uint8_t> out((n + 2) * es, 0xAB);
            convert(in.data() + off * dtype_size(src), src, out.data() + es, dst, n);
            for (std::size_t i = 0; i < n; ++i) {
              const uint8_t* got = out.data() + (i + 1) * es;
              const uint8_t* ref = want.data() + (i + off) * es;
              if (std::isnan(values[i + off])) continue;  // NaN's payload may differ; NaN-ness checked below
              ASSERT_EQ(0, std::memcmp(got, ref, es)) << name << " " << dtype_name(src) << " -> " << dtype_name(dst)
                                                      << " n " << n << " element " << i << " = " << values[i + off];
            }
            for (std::size_t b = 0; b < es; ++b)
              ASSERT_TRUE(out[b] == 0xAB && out[(n + 1) * es + b] == 0xAB) << name << ": wrote outside [0, n)";
          }
        std::vector<uint8_t> out(values.size() * dtype_size(dst));
        convert(in.data(), src, out.data(), dst, values.size());
        for (std::size_t i = 0; i < values.size(); ++i)
          if (std::isnan(values[i])) {
            ASSERT_TRUE(std::isnan(scalar_at(out.data(), dst, i))) << name << " " << dtype_name(src) << " -> " << dtype_name(dst) << ": NaN lost";
          }
      });
    }
}

}  // namespace
