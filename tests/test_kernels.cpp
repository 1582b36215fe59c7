// The kernel registry (kernels.hpp) and CPU feature control (cpu.hpp): every registered kernel
// is either reached by a call on this CPU or skipped by name; forcing, masking and their errors.
// Each op's own test binary checks every reachable kernel against the reference.
#include <cstdlib>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace {

using namespace pagedinfer;
using testutil::expect_error;

struct Registered {
  std::string op, name;
};

std::vector<Registered> all_kernels() {
  std::vector<Registered> out;
  for (const KernelInfo& k : registered_kernels()) out.push_back({k.op, k.name});
  return out;
}

// Whether some call of the op runs the (forced) kernel.
bool reached(const std::string& op, const std::string& name) {
  const testutil::ForcedKernel forced(op, name);
  const DType dtypes[] = {DType::f32, DType::bf16, DType::f16};
  if (op == "attention") {
    for (DType q : dtypes)
      for (DType kv : {DType::f32, DType::bf16, DType::f16, DType::i8, DType::f8_e4m3, DType::f8_e5m2})
        if (name == attention_kernel_name(q, kv)) return true;
  } else if (op == "norm") {
    for (DType x : dtypes)
      if (name == rms_norm_kernel_name(x, x)) return true;
  } else if (op == "rope") {
    for (DType x : dtypes)
      if (name == rope_kernel_name(x, x)) return true;
  } else if (op == "convert") {
    for (DType a : dtypes)
      for (DType b : dtypes)
        if (name == convert_kernel_name(a, b)) return true;
  } else if (op == "quantize_kv") {
    for (DType kv : {DType::i8, DType::f8_e4m3, DType::f8_e5m2})
      if (name == quantize_kv_kernel_name(kv)) return true;
  } else if (op == "sampling") {
    return name == sample_kernel_name();
  } else if (op == "linear") {
    std::vector<float> wf(64 * 256, 0.5f);
    for (int bits : {4, 8}) {
      const QuantizedWeight w = quantize(wf.data(), DType::f32, 64, 256, 256, QuantFormat{bits, 128, QuantZero::zero_point});
      LinearParams p;
      p.k = 256;
      for (auto mode : {LinearActivations::float_, LinearActivations::int8_per_token})
        for (DType x : dtypes)
          for (int64_t m : {1, 2, 16, 64}) {
            p.activations = mode;
            p.x.dtype = x;
            p.m = m;
            if (name == linear_kernel_name(w, p)) return true;
          }
    }
  }
  return false;
}

class Kernel : public ::testing::TestWithParam<Registered> {};

TEST_P(Kernel, IsReachedOnThisCpuOrSkippedByName) {
  const Registered& k = GetParam();
  for (const KernelInfo& info : registered_kernels(k.op))
    if (k.name == info.name && !kernel_runs_here(info))
      GTEST_SKIP() << k.op << " kernel " << k.name << " needs "
                   << feature_names(info.needs & ~active_features()) << ", which this CPU lacks";
  EXPECT_TRUE(reached(k.op, k.name)) << "no call runs " << k.op << " kernel " << k.name << " when forced";
}

INSTANTIATE_TEST_SUITE_P(Registered, Kernel, ::testing::ValuesIn(all_kernels()),
                         [](const ::testing::TestParamInfo<Registered>& i) { return i.param.op + "_" + i.param.name; });

TEST(Registry, NamesAreUniqueAndTablesEndOnTheBaseline) {
  for (const std::string& op : kernel_ops()) {
    const std::vector<KernelInfo> ks = registered_kernels(op);
    ASSERT_FALSE(ks.empty()) << op;
    for (size_t i = 0; i < ks.size(); ++i) {
      EXPECT_EQ(std::string(ks[i].op), op);
      EXPECT_NE(std::string(ks[i].serves), "") << ks[i].name;
      for (size_t j = 0; j < i; ++j) EXPECT_NE(std::string(ks[i].name), ks[j].name) << op;
    }
    EXPECT_EQ(ks.back().needs & ~isa_features(Isa::baseline), 0u) << op << ": the last kernel must run anywhere";
    EXPECT_TRUE(kernel_runs_here(ks.back()));
  }
}

TEST(Registry, ForcingAndItsErrors) {
  expect_error([] { force_kernel("linear", "no_such_kernel"); }, {"force_kernel", "no linear kernel", "no_such_kernel"});
  expect_error([] { force_kernel("matmul", "x"); }, {"force_kernel", "unknown op 'matmul'"});
  expect_error([] { registered_kernels("matmul"); }, {"unknown op 'matmul'"});
  const std::string last = registered_kernels("norm").back().name;
  {
    testutil::ForcedKernel forced("norm", last);
    EXPECT_EQ(forced_kernel("norm"), last);
    EXPECT_EQ(std::string(rms_norm_kernel_name(DType::bf16, DType::bf16)), last);
  }
  EXPECT_EQ(forced_kernel("norm"), "");
  // A forced kernel that cannot compute a call leaves it to the table.
  for (const KernelInfo& k : registered_kernels("attention"))
    if (std::string(k.name) == "avx512_bf16_dot" && kernel_runs_here(k)) {
      testutil::ForcedKernel forced("attention", k.name);
      EXPECT_EQ(std::string(attention_kernel_name(DType::bf16, DType::bf16)), k.name);
      EXPECT_NE(std::string(attention_kernel_name(DType::f32, DType::bf16)), k.name);
    }
}

TEST(CpuFeatures, CapAndDisabledSetLimitTheActiveFeatures) {
  const FeatureSet detected = detected_features();
  EXPECT_EQ(active_features(), detected & isa_features(kTopIsa));
  for (int i = 0; i <= static_cast<int>(detected_isa()); ++i) {
    const Isa level = static_cast<Isa>(i);
    testutil::IsaCap cap(level);
    EXPECT_EQ(active_isa(), level);
    EXPECT_EQ(active_features() & ~isa_features(level), 0u);
    EXPECT_EQ(parse_isa(isa_name(level)), level);
  }
  if (detected & feature_bit(CpuFeature::avx512_bf16)) {
    testutil::CpuClass no_bf16(kTopIsa, features(CpuFeature::avx512_bf16));
    EXPECT_EQ(active_features() & feature_bit(CpuFeature::avx512_bf16), 0u);
    EXPECT_EQ(active_isa(), Isa::avx512);  // an AVX512-VNNI CPU without BF16
  }
  EXPECT_EQ(parse_features("avx2,amx_tile"), features(CpuFeature::avx2, CpuFeature::amx_tile));
  EXPECT_EQ(feature_names(features(CpuFeature::fma, CpuFeature::avx512_vnni)), "fma,avx512_vnni");
  EXPECT_EQ(parse_features(""), 0u);
  expect_error([] { parse_features("avx2,avx1024"); }, {"parse_features", "unknown CPU feature 'avx1024'"});
  expect_error([] { set_disabled_features(isa_features(Isa::baseline)); }, {"set_disabled_features", "cannot be disabled"});
  expect_error([] { parse_isa("avx1024"); }, {"unknown ISA 'avx1024'"});
  expect_error([] { set_max_isa(static_cast<Isa>(17)); }, {"set_max_isa", "cap = 17"});
  const std::string vendor = tuning_vendor();
  EXPECT_TRUE(vendor == "intel" || vendor == "amd" || vendor == "other") << vendor;
}

}  // namespace
