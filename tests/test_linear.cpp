// linear(): every registered kernel this CPU runs against reference::linear, over bit widths, zero
// forms, group sizes, activation dtypes and modes, m from 1 to 130, odd n and k, strides,
// epilogues, imported checkpoints and threads; plus exactness of the int8 path and errors.
#include <array>
#include <cstdlib>
#include <string>
#include <thread>

#include "linear_call.hpp"
#include "test_util.hpp"

namespace {

using namespace pagedinfer;
using testutil::Buffer;
using testutil::expect_error;
using namespace linear_test;

struct Case {
  int bits, group;
  QuantZero zero;
  DType x;
  LinearActivations mode;
};

std::string case_name(const ::testing::TestParamInfo<Case>& i) {
  const Case& c = i.param;
  const char* zero = c.zero == QuantZero::symmetric ? "sym" : c.zero == QuantZero::zero_point ? "zp" : "fo";
  return "w" + std::to_string(c.bits) + "g" + std::to_string(c.group) + zero + "_" + dtype_name(c.x) +
         (c.mode == LinearActivations::int8_per_token ? "_a8" : "_a16");
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (int bits : {4, 8})
    for (int group : {0, 32, 128})
      for (QuantZero zero : {QuantZero::symmetric, QuantZero::zero_point, QuantZero::float_offset})
        for (DType x : {DType::f32, DType::bf16, DType::f16})
          for (auto mode : {LinearActivations::float_, LinearActivations::int8_per_token})
            out.push_back({bits, group, zero, x, mode});
  return out;
}

class LinearSweep : public ::testing::TestWithParam<Case> {};

TEST_P(LinearSweep, MatchesReferenceOnEveryKernelForManyM) {
  const Case c = GetParam();
  std::mt19937 rng(uint32_t(c.bits * 1000 + c.group * 10 + int(c.zero)));
  const int64_t n = 67, k = c.group ? 3 * c.group : 203;  // odd n; per-channel k not a multiple of 8
  const std::vector<float> wf = random_weights(n, k, rng);
  const QuantizedWeight w = quantize(wf.data(), DType::f32, n, k, k, QuantFormat{c.bits, c.group, c.zero});
  for (int64_t m = 1; m <= 17; ++m) {
    SCOPED_TRACE(testing::Message() << "m " << m);
    Call call(w, m, c.x, c.x, c.mode, rng);
    call.check_every_kernel();
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, LinearSweep, ::testing::ValuesIn(all_cases()), case_name);

TEST(Linear, LargeMAndTwoThreadsAreDeterministic) {
  std::mt19937 rng(21);
  const int64_t n = 200, k = 512;
  const std::vector<float> wf = random_weights(n, k, rng);
  for (int bits : {4, 8}) {
    const QuantizedWeight w = quantize(wf.data(), DType::f32, n, k, k, QuantFormat{bits, 128, QuantZero::zero_point});
    for (auto mode : {LinearActivations::float_, LinearActivations::int8_per_token}) {
      Call call(w, 512, DType::bf16, DType::bf16, mode, rng);
      call.check_every_kernel_thread_invariant();
    }
  }
}

// The shapes that the amx level's tile kernels take (int8 activations from 9 rows, bf16
// activations from 1 or 2; k in whole steps of 32 or 64) across their row blocks (up to 16 rows
// in one block with its weights converted step by step; 16 and 32 rows, 128 rows per weight
// chunk), their chunks of k (groups inside one, or one group over several: per channel) and the
// panels; on CPUs without AMX these run the VNNI / bf16 / generic kernels.
TEST(Linear, ManyRowsOverTileShapes) {
  std::mt19937 rng(29);
  const struct {
    int bits, group;
    int64_t k;
  } shapes[] = {{8, 0, 1088}, {4, 0, 1088}, {4, 0, 1120}, {8, 32, 256}, {4, 32, 192},
                {4, 64, 640}, {8, 128, 1152}, {4, 128, 384}};
  for (const auto& s : shapes) {
    const int64_t n = 83;
    const std::vector<float> wf = random_weights(n, s.k, rng);
    for (QuantZero zero : {QuantZero::zero_point, QuantZero::float_offset}) {
      const QuantizedWeight w = quantize(wf.data(), DType::f32, n, s.k, s.k, QuantFormat{s.bits, s.group, zero});
      for (auto mode : {LinearActivations::int8_per_token, LinearActivations::float_}) {
        for (int64_t m : {1, 2, 11, 16, 31, 33, 161}) {
          SCOPED_TRACE(testing::Message() << "bits " << s.bits << " group " << s.group << " k " << s.k << " m " << m
                                          << (mode == LinearActivations::float_ ? " bf16" : " int8"));
          Call call(w, m, DType::bf16, DType::f32, mode, rng);
          call.check_every_kernel(2);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
  // The epilogues on tile blocks.
  const int64_t half = 40, k = 256;
  const std::vector<float> wf = random_weights(2 * half, k, rng);
  for (int bits : {4, 8}) {
    const QuantizedWeight w =
        quantize(wf.data(), DType::f32, 2 * half, k, k, testutil::gate_up_options(QuantFormat{bits, 128, QuantZero::symmetric}));
    for (bool silu : {false, true}) {
      for (int64_t m : {3, 37}) {
        SCOPED_TRACE(testing::Message() << "epilogues bits " << bits << " silu " << silu << " m " << m);
        Call call(w, m, DType::f16, DType::bf16, LinearActivations::int8_per_token, rng, /*bias=*/true,
                  /*residual=*/true, silu);
        call.check_every_kernel(2);
        Call bf16(w, m, DType::bf16, DType::bf16, LinearActivations::float_, rng, true, true, silu);
        bf16.check_every_kernel(2);
        if (HasFatalFailure()) return;
      }
    }
  }
}

// The selection table (src/gemm/dispatch.cpp) on the CPU classes this host can emulate (cap +
// disabled features), and linear_unit() naming each kernel's arithmetic. ctest also runs this
// with PAGEDINFER_CPU_VENDOR set to each vendor.
TEST(Linear, SelectionFollowsTheTable) {
  using F = CpuFeature;
  std::mt19937 rng(5);
  const int64_t n = 64, k = 256;
  const std::vector<float> wf = random_weights(n, k, rng);
#if defined(__aarch64__)
  // One kernel per activation mode on aarch64.
  const QuantizedWeight w = quantize(wf.data(), DType::f32, n, k, k, QuantFormat{4, 128, QuantZero::zero_point});
  LinearParams a;
  a.k = k;
  for (int64_t m : {1, 9, 64}) {
    a.m = m;
    a.activations = LinearActivations::float_;
    EXPECT_STREQ(linear_kernel_name(w, a), "neon_fp32");
    a.activations = LinearActivations::int8_per_token;
    EXPECT_STREQ(linear_kernel_name(w, a), "neon_int32");
  }
  return;  // the x86 CPU classes below cannot be emulated here
#endif
  const QuantizedWeight w8 = quantize(wf.data(), DType::f32, n, k, k, QuantFormat{8, 128, QuantZero::symmetric});
  const QuantizedWeight w4 = quantize(wf.data(), DType::f32, n, k, k, QuantFormat{4, 128, QuantZero::zero_point});
  const char* vendor = std::getenv("PAGEDINFER_CPU_VENDOR");
  const bool amd = vendor ? std::string(vendor) == "amd" : testutil::cpu_is_amd();
  struct Class {
    const char* name;
    Isa cap;
    FeatureSet disabled;
  };
  const Class classes[] = {
      {"haswell", Isa::avx2, features(F::avx_vnni)},
      {"alder_lake", Isa::avx2, 0},
      {"skylake_sp", Isa::avx512, features(F::avx512_vnni, F::avx_vnni)},
      {"cascade_lake", Isa::avx512, features(F::avx_vnni)},
      {"zen4_or_spr_without_amx", Isa::avx512_bf16, 0},
      {"amx", Isa::amx, 0},
  };
  // What the table picks: (bf16 x, fp32 x, int8 x) for a class, rows m and weight bits.
  const auto expected = [&](const Class& c, int64_t m, int bits) -> std::array<std::string, 3> {
    const FeatureSet f = isa_features(c.cap) & ~c.disabled;
    const bool vnni512 = f & feature_bit(F::avx512_vnni), bf16 = f & feature_bit(F::avx512_bf16);
    const bool avx512 = f & feature_bit(F::avx512f), amx = f & feature_bit(F::amx_tile);
    std::string int8 = vnni512 ? "avx512_vnni" : (f & feature_bit(F::avx_vnni)) ? "avx2_vnni"
                                                : avx512                       ? "avx512_int32"
                                                                               : "avx2_int32";
    if (amx && m >= (bits == 4 ? 5 : 9)) int8 = "amx_int8";
    const std::string fp32 = !avx512 ? "avx2_fp32" : m == 1 && vnni512 && !amd ? "avx512_fixed_point"
                                                 : m == 1                      ? "avx512_fma_row"
                                                                               : "avx512_fp32";
    std::string b16 = amx && m >= 2 ? "amx_bf16" : m == 1 && vnni512 && !amd ? "avx512_fixed_point"
                                                 : bf16                      ? "avx512_bf16_dot"
                                                                             : fp32;
    return {b16, fp32, int8};
  };
  LinearParams p;
  p.k = k;
  for (const Class& c : classes) {
    if ((detected_features() & isa_features(c.cap)) != isa_features(c.cap)) continue;  // not emulable here
    testutil::CpuClass emulated(c.cap, c.disabled);
    for (const QuantizedWeight* weight : {&w8, &w4})
      for (int64_t m : {1, 2, 4, 5, 8, 9, 32}) {
        SCOPED_TRACE(testing::Message() << c.name << " m " << m << " bits " << weight->format().bits);
        const auto want = expected(c, m, weight->format().bits);
        p.m = m;
        p.activations = LinearActivations::float_;
        p.x.dtype = DType::bf16;
        EXPECT_EQ(linear_kernel_name(*weight, p), want[0]);
        p.x.dtype = DType::f32;
        EXPECT_EQ(linear_kernel_name(*weight, p), want[1]);
        const LinearUnit f32 = linear_unit(*weight, p);
        EXPECT_EQ(f32, want[1] == "avx512_fixed_point" ? LinearUnit::int8_dot : LinearUnit::fp32_fma);
        p.activations = LinearActivations::int8_per_token;
        EXPECT_EQ(linear_kernel_name(*weight, p), want[2]);
        const LinearUnit int8 = linear_unit(*weight, p);
        EXPECT_EQ(int8, want[2] == "amx_int8"          ? LinearUnit::amx_int8
                        : want[2].find("vnni") != std::string::npos ? LinearUnit::int8_dot
                                                                     : LinearUnit::int32_vector);
      }
  }
  EXPECT_STREQ(linear_unit_name(LinearUnit::amx_bf16), "amx_bf16");
  EXPECT_STREQ(linear_unit_name(LinearUnit::int32_vector), "int32_vector");
}

#if defined(PAGEDINFER_TEST_AMX_CALLER)
}  // namespace
namespace amx_caller {  // amx_caller.cpp
void configure();
void product(const int8_t* a, const int8_t* b_vnni, int32_t* c);
void release();
}  // namespace amx_caller
namespace {

// The AMX contract (linear.hpp): a call on AMX tiles loads its own configuration and releases
// the tiles on return. A caller that uses tiles itself configures before its call, has them
// taken by linear(), and works again once it reconfigures.
TEST(Linear, CallersOwnTilesWorkAfterReconfiguring) {
  const FeatureSet amx = features(CpuFeature::amx_tile, CpuFeature::amx_int8);
  if ((detected_features() & amx) != amx) GTEST_SKIP() << "no AMX int8 on this CPU";
  std::mt19937 rng(41);
  std::uniform_int_distribution<int> byte(-128, 127);
  std::array<int8_t, 16 * 64> a{}, b_vnni{};
  for (int8_t& v : a) v = int8_t(byte(rng));
  for (int8_t& v : b_vnni) v = int8_t(byte(rng));
  std::array<int32_t, 256> want{}, got{};
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j)
      for (int k = 0; k < 64; ++k) want[size_t(i * 16 + j)] += a[size_t(i * 64 + k)] * b_vnni[size_t(k / 4 * 64 + 4 * j + k % 4)];
  const std::vector<float> wf = random_weights(64, 256, rng);
  const QuantizedWeight w = quantize(wf.data(), DType::f32, 64, 256, 256, QuantFormat{8, 128, QuantZero::symmetric});
  Call call(w, 16, DType::bf16, DType::f32, LinearActivations::int8_per_token, rng);
  testutil::ForcedKernel forced("linear", "amx_int8");
  ASSERT_STREQ(linear_kernel_name(w, call.p), "amx_int8");

  amx_caller::configure();
  amx_caller::product(a.data(), b_vnni.data(), got.data());
  EXPECT_EQ(got, want) << "the caller's own tiles, before";
  call.run_and_check(1, "linear() while the caller had tiles configured");
  call.run_and_check(2, "linear() on two threads");
  got.fill(0);
  amx_caller::configure();  // the contract: reconfigure after a foreign call
  amx_caller::product(a.data(), b_vnni.data(), got.data());
  EXPECT_EQ(got, want) << "the caller's own tiles, after reconfiguring";
  amx_caller::release();
}
#endif

// Two caller threads share one weight, each with its own workspace (and 2 threads inside).
TEST(Linear, ConcurrentCallsOnOneWeight) {
  std::mt19937 rng(28);
  const std::vector<float> wf = random_weights(96, 256, rng);
  const QuantizedWeight w = quantize(wf.data(), DType::f32, 96, 256, 256, QuantFormat{4, 128, QuantZero::zero_point});
  Call a(w, 33, DType::bf16, DType::f32, LinearActivations::int8_per_token, rng);
  Call b(w, 7, DType::bf16, DType::f32, LinearActivations::float_, rng);
  a.run_and_check(2, "alone");
  b.run_and_check(2, "alone");
  const std::vector<uint8_t> ya(static_cast<const uint8_t*>(a.y.data()), static_cast<const uint8_t*>(a.y.data()) + a.y.bytes());
  const std::vector<uint8_t> yb(static_cast<const uint8_t*>(b.y.data()), static_cast<const uint8_t*>(b.y.data()) + b.y.bytes());
  for (int round = 0; round < 20; ++round) {
    std::thread ta([&] { a.run_and_check(2, "concurrent a"); });
    std::thread tb([&] { b.run_and_check(2, "concurrent b"); });
    ta.join();
    tb.join();
    ASSERT_EQ(std::memcmp(ya.data(), a.y.data(), ya.size()), 0);
    ASSERT_EQ(std::memcmp(yb.data(), b.y.data(), yb.size()), 0);
  }
}

TEST(Linear, EpiloguesBiasResidualAndSiluMul) {
  std::mt19937 rng(22);
  const int64_t half = 40, k = 256;
  const std::vector<float> wf = random_weights(2 * half, k, rng);
  for (int bits : {4, 8})
    for (auto mode : {LinearActivations::float_, LinearActivations::int8_per_token}) {
      const QuantizedWeight w =
          quantize(wf.data(), DType::f32, 2 * half, k, k, testutil::gate_up_options(QuantFormat{bits, 64, QuantZero::symmetric}));
      for (bool silu : {false, true})
        for (bool residual : {false, true})
          for (DType y : {DType::f32, DType::bf16})
            for (int64_t m : {1, 9}) {  // one row has kernels of its own
              SCOPED_TRACE(testing::Message() << "bits " << bits << " silu " << silu << " residual " << residual
                                              << " m " << m);
              Call call(w, m, DType::bf16, y, mode, rng, /*bias=*/true, residual, silu);
              call.check_every_kernel(2);
              if (HasFatalFailure()) return;
            }
    }
}

TEST(Linear, FloatInputBf16Output) {
  std::mt19937 rng(23);
  const std::vector<float> wf = random_weights(64, 128, rng);
  const QuantizedWeight w = quantize(wf.data(), DType::f32, 64, 128, 128, QuantFormat{4, 128, QuantZero::float_offset});
  Call call(w, 5, DType::f32, DType::bf16, LinearActivations::float_, rng);
  call.check_every_kernel();
}

TEST(Linear, ImportedCheckpointsIncludingActOrder) {
  std::mt19937 rng(24);
  const int64_t n = 48, k = 256;
  // GPTQ int4 / int8 with a shuffled g_idx: the kernel must read x in the weight's k order.
  for (int bits : {4, 8}) {
    const int per = 32 / bits;
    std::vector<int32_t> qweight(size_t(k / per * n)), qzeros(size_t(k / 64 * n / per));
    std::uniform_int_distribution<int32_t> any;
    for (auto& v : qweight) v = any(rng);
    for (auto& v : qzeros) v = any(rng);
    std::vector<uint16_t> scales(size_t(k / 64 * n));
    for (auto& s : scales) s = float_to_f16(std::uniform_real_distribution<float>(0.001f, 0.01f)(rng));
    std::vector<int32_t> g_idx(static_cast<size_t>(k));
    for (int64_t i = 0; i < k; ++i) g_idx[size_t(i)] = int32_t(i % 4);  // act-order style interleave
    const QuantizedWeight w = import_gptq(qweight.data(), qzeros.data(), scales.data(), g_idx.data(), n, k, bits, 64);
    ASSERT_TRUE(w.act_order());
    for (auto mode : {LinearActivations::float_, LinearActivations::int8_per_token})
      for (int64_t m : {1, 4}) {
        Call call(w, m, DType::bf16, DType::f32, mode, rng);
        call.check_every_kernel();
      }
  }
  // Q4_0 with random blocks.
  std::vector<uint8_t> blocks(size_t(n * k / 32 * 18));
  for (auto& b : blocks) b = uint8_t(rng());
  for (size_t b = 0; b < blocks.size() / 18; ++b) {
    const uint16_t d = float_to_f16(0.002f * float(b % 7 + 1));
    std::memcpy(&blocks[b * 18], &d, 2);
  }
  const QuantizedWeight q4 = import_q4_0(blocks.data(), n, k);
  Call call(q4, 3, DType::bf16, DType::bf16, LinearActivations::int8_per_token, rng);
  call.check_every_kernel();
}

// Tensor-parallel shards (test_shard checks their elements) on every kernel: a row-parallel
// shard of an act-order weight, whose groups are padded runs of 32, and a column-parallel
// gate_up shard with its SiLU epilogue.
TEST(Linear, TensorParallelShards) {
  std::mt19937 rng(31);
  const QuantizedWeight w = testutil::random_act_order_gptq(48, 512, 4, 128, rng);
  const QuantizedWeight row_shard = shard_input_features(w, 1, 2);
  for (auto mode : {LinearActivations::float_, LinearActivations::int8_per_token})
    for (int64_t m : {1, 5}) {
      SCOPED_TRACE(testing::Message() << "mode " << int(mode) << " m " << m);
      Call call(row_shard, m, DType::bf16, DType::f32, mode, rng);
      call.check_every_kernel();
    }
  const std::vector<float> wf = random_weights(2 * 96, 256, rng);
  QuantizeOptions o(QuantFormat{4, 128, QuantZero::zero_point});
  o.gate_up = true;
  const QuantizedWeight gate_up = quantize(wf.data(), DType::f32, 2 * 96, 256, 256, o);
  const QuantizedWeight column_shard = shard_output_features(gate_up, 1, 2);  // Call keeps a reference
  Call call(column_shard, 3, DType::bf16, DType::bf16, LinearActivations::int8_per_token, rng, false, false,
            /*silu=*/true);
  call.check_every_kernel();
}

// With power-of-two scales, integer activations whose row maximum is 127 and small sums, every
// fp32 step of the int8 path is exact: the result must equal the reference exactly.
TEST(Linear, Int8PathIsExactWhenTheArithmeticIs) {
  std::mt19937 rng(25);
  const int64_t n = 32, k = 128;
  std::vector<uint8_t> blocks(size_t(n * k / 32 * 34));
  for (size_t b = 0; b < blocks.size() / 34; ++b) {
    const uint16_t d = float_to_f16(1.f / 64);
    std::memcpy(&blocks[b * 34], &d, 2);
    for (int j = 0; j < 32; ++j) blocks[b * 34 + 2 + size_t(j)] = uint8_t(int8_t(int(rng() % 255) - 127));
  }
  const QuantizedWeight w = import_q8_0(blocks.data(), n, k);
  for (int64_t m : {2, 40}) {  // 40: the amx level's tiles
    Buffer x(DType::f32, size_t(m * k)), y(DType::f32, size_t(m * n)), ref(DType::f32, size_t(m * n));
    for (int64_t i = 0; i < m * k; ++i) x.set(size_t(i), float(int(rng() % 255) - 127));
    for (int64_t r = 0; r < m; ++r) x.set(size_t(r * k + r % k), r % 2 ? -127.f : 127.f);
    reference::linear(w, int8_params(m, k, n, x, ref));
    on_every_kernel(w, int8_params(m, k, n, x, y), [&](const std::string& kernel) {
      for (size_t i = 0; i < y.n; ++i) ASSERT_EQ(y.get(i), ref.get(i)) << kernel << " m " << m << " " << i;
    });
  }
}

// One row of float x on fixed point (linear.hpp) is exact where its arithmetic is: the row's
// maximum, 1.0, lies in a group whose weights are all 0 (q = z), so every other x = j 2^(8 p -
// 29) becomes j 2^(8 p) in fixed point, digit p alone or with a carry into the next (|j| up to
// 255); with power-of-two scales and small sums every step is exact on every path.
TEST(Linear, OneRowFixedPointIsExactWhenTheArithmeticIs) {
  std::mt19937 rng(29);
  const int64_t n = 40, k = 64;
  for (int bits : {4, 8}) {  // llama.cpp blocks: scale d, then 16 bytes of nibbles or 32 int8
    const size_t block_bytes = bits == 4 ? 18 : 34;
    std::vector<uint8_t> blocks(size_t(n * k / 32) * block_bytes);
    for (size_t b = 0; b < blocks.size() / block_bytes; ++b) {
      const uint16_t d = float_to_f16(1.f / 64);
      std::memcpy(&blocks[b * block_bytes], &d, 2);
      const bool zero_group = b % 2 == 0;
      const uint8_t zero_q = bits == 4 ? 0x88 : 0;  // q = z: nibbles 8 (Q4_0) or int8 0 (Q8_0)
      for (size_t j = 2; j < block_bytes; ++j) blocks[b * block_bytes + j] = zero_group ? zero_q : uint8_t(rng());
    }
    const QuantizedWeight w = bits == 4 ? import_q4_0(blocks.data(), n, k) : import_q8_0(blocks.data(), n, k);
    for (DType xt : {DType::f32, DType::bf16})
      for (int digit = 0; digit < 4; ++digit) {
        const int jmax = digit < 3 ? 255 : 31;  // |x| < 1
        Buffer x(xt, size_t(k)), y(DType::f32, size_t(n)), ref(DType::f32, size_t(n));
        for (int64_t i = 0; i < k; ++i)
          x.set(size_t(i), i < 32 ? 0.f : std::ldexp(float(int(rng() % (2 * jmax + 1)) - jmax), 8 * digit - 29));
        x.set(3, 1.f);
        LinearParams p = int8_params(1, k, n, x, y);
        p.activations = LinearActivations::float_;
        p.x.dtype = xt;
        LinearParams q = p;
        q.y.data = ref.data();
        reference::linear(w, q);
        on_every_kernel(w, p, [&](const std::string& kernel) {
          for (size_t i = 0; i < y.n; ++i)
            ASSERT_EQ(y.get(i), ref.get(i)) << kernel << " bits " << bits << " " << dtype_name(xt) << " digit "
                                            << digit << " col " << i;
        });
      }
  }
}

// One row whose |x| spans 2^-40..2^10 (2^-14.. for fp16): the fixed-point path rounds what lies
// below its step (the tolerance's fixed-point term, linear.hpp), which dominates the bound where
// the row's maximum lies in a group of zero weights and every other x 2^19 and more below it. Per-channel
// k = 100 packs to 104, a multiple of 8 but not of 16. A row of zeros gives zeros; a non-finite
// x, a row of NaN on fixed point (linear.hpp) and non-finite values on the other paths.
TEST(Linear, OneRowOfWideRangeActivations) {
  std::mt19937 rng(30);
  const int64_t n = 37;
  const std::pair<QuantFormat, int64_t> formats[] = {{QuantFormat{4, 0, QuantZero::zero_point}, 100},
                                                     {QuantFormat{8, 32, QuantZero::symmetric}, 96},
                                                     {QuantFormat{4, 128, QuantZero::float_offset}, 256}};
  for (const auto& format_k : formats) {
    const QuantFormat format = format_k.first;  // not a structured binding: lambdas capture k
    const int64_t k = format_k.second;
    std::vector<float> wf = random_weights(n, k, rng);
    for (int64_t r = 0; r < n; ++r)  // grouped: the first group's weights are 0 (scale 0)
      for (int64_t i = 0; i < format.group_size; ++i) wf[size_t(r * k + i)] = 0.f;
    const QuantizedWeight w = quantize(wf.data(), DType::f32, n, k, k, format);
    for (DType xt : {DType::f32, DType::bf16, DType::f16}) {
      SCOPED_TRACE(testing::Message() << "bits " << format.bits << " k " << k << " " << dtype_name(xt));
      Call call(w, 1, xt, DType::f32, LinearActivations::float_, rng);
      // |x| = (1 + j / 256) 2^e for e in [lowest, highest], random signs; x[0] = max if set.
      const auto fill = [&](int lowest, int highest, float max) {
        for (int64_t i = 0; i < k; ++i) {
          const int e = lowest + int(rng() % uint32_t(highest - lowest + 1));
          const float v = std::ldexp(1.f + float(rng() % 256) / 256.f, e);
          call.x.set(size_t(i), rng() % 2 ? v : -v);
        }
        if (max > 0) call.x.set(0, max);
        call.compute_expected();
        call.check_every_kernel();
      };
      fill(xt == DType::f16 ? -14 : -40, 10, 0.f);
      if (xt != DType::f16 && format.group_size) fill(-10, 10, 0x1p30f);
      if (HasFatalFailure()) return;
      for (int64_t i = 0; i < k; ++i) call.x.set(size_t(i), 0.f);
      call.compute_expected();
      call.check_every_kernel();
      call.x.set(size_t(k / 2), INFINITY);
      LinearParams p = call.p;
      p.y.data = call.y.data();
      on_every_kernel(w, p, [&](const std::string& kernel) {
        const bool fixed_point = linear_unit(w, p) == LinearUnit::int8_dot;
        for (int64_t c = 0; c < call.n_out; ++c) {
          const float got = call.y.get(size_t(c));
          if (fixed_point) ASSERT_TRUE(std::isnan(got)) << kernel << " col " << c;
          else ASSERT_FALSE(std::isfinite(got)) << kernel << " col " << c;
        }
      });
    }
  }
}

// A row's largest |x| must quantize to +-127 even where x * (127 / max|x|) rounds an ulp above
// 127 in fp32 (about one random row in eight). Each row here holds such a maximum; an identity
// weight makes y the dequantized activations themselves, so the maximum's column shows it.
TEST(Linear, Int8ActivationsKeepEachRowsMaximum) {
  std::mt19937 rng(27);
  const int64_t k = 96;
  std::vector<float> identity(size_t(k * k), 0.f);
  for (int64_t i = 0; i < k; ++i) identity[size_t(i * k + i)] = 1.f;
  // A maximum whose fp32 product with fp32(127 / it) exceeds 127.
  std::uniform_real_distribution<float> magnitude(0.01f, 100.f);
  const auto awkward_maximum = [&] {
    for (;;) {
      const volatile float a = magnitude(rng), inv = 127.f / a;
      if (a * inv > 127.f) return float(a);
    }
  };
  for (const QuantFormat f : {QuantFormat{8, 0, QuantZero::symmetric}, QuantFormat{4, 32, QuantZero::symmetric}}) {
    const QuantizedWeight w = quantize(identity.data(), DType::f32, k, k, k, f);
    for (int64_t m : {1, 3, 6, 40}) {
      Buffer x(DType::f32, size_t(m * k)), y(DType::f32, size_t(m * k));
      std::vector<float> amax(static_cast<size_t>(m));
      std::vector<int8_t> a(static_cast<size_t>(k));
      for (int64_t r = 0; r < m; ++r) {
        amax[size_t(r)] = awkward_maximum();
        std::uniform_real_distribution<float> u(-0.9f * amax[size_t(r)], 0.9f * amax[size_t(r)]);
        for (int64_t c = 0; c < k; ++c) x.set(size_t(r * k + c), u(rng));
        x.set(size_t(r * k + int64_t(rng() % k)), rng() % 2 ? amax[size_t(r)] : -amax[size_t(r)]);
        reference::quantize_activation_row(static_cast<const float*>(x.data()) + r * k, DType::f32, k, a.data());
        int largest = 0;
        for (int8_t v : a) largest = std::max(largest, std::abs(int(v)));
        ASSERT_EQ(largest, 127) << "reference, row " << r;
      }
      on_every_kernel(w, int8_params(m, k, k, x, y, 2), [&](const std::string& kernel) {
        // Rounding to int8 (half a step) plus the fp16 weight scale (2^-11 relative).
        for (int64_t i = 0; i < m * k; ++i) {
          const double bound = amax[size_t(i / k)] / 254 * 1.001 + std::fabs(x.get(size_t(i))) * 1e-3;
          ASSERT_NEAR(y.get(size_t(i)), x.get(size_t(i)), bound) << kernel << " bits " << f.bits << " m " << m
                                                               << " row " << i / k << " col " << i % k;
        }
      });
    }
  }
}

// A non-finite x makes its row's int8 values 0 and its scale inf or NaN (linear.hpp): that row
// of y is all non-finite, and the rows around it, in the same row blocks, are untouched.
TEST(Linear, Int8ActivationsCarryNonFiniteRowsIntoY) {
  std::mt19937 rng(28);
  const int64_t m = 7, n = 48, k = 96;
  Buffer wf(DType::f32, size_t(n * k));
  wf.fill_uniform(rng, -1.f, 1.f);
  for (const QuantFormat f : {QuantFormat{8, 0, QuantZero::symmetric}, QuantFormat{4, 32, QuantZero::zero_point}}) {
    const QuantizedWeight w = quantize(wf.data(), DType::f32, n, k, k, f);
    Buffer x(DType::f32, size_t(m * k)), finite_x(DType::f32, size_t(m * k));
    x.fill_uniform(rng, -1.f, 1.f);
    std::memcpy(finite_x.data(), x.data(), x.bytes());
    x.set(size_t(2 * k + 17), INFINITY);
    x.set(size_t(5 * k + 70), NAN);
    for (int64_t rows : {int64_t(1), m}) {  // one row alone (its own kernel) and blocks of several
      Buffer y(DType::f32, size_t(rows * n)), finite_y(DType::f32, size_t(rows * n));
      const int64_t first = rows == 1 ? 2 : 0;  // the single row is the one holding inf
      const auto rows_of = [&](const Buffer& b) {
        Buffer out(DType::f32, size_t(rows * k));
        std::memcpy(out.data(), static_cast<const float*>(b.data()) + first * k, out.bytes());
        return out;
      };
      const Buffer xs = rows_of(x), finite_xs = rows_of(finite_x);
      on_every_kernel(w, int8_params(rows, k, n, xs, y), [&](const std::string& kernel) {
        run_linear(w, int8_params(rows, k, n, finite_xs, finite_y));
        for (int64_t r = 0; r < rows; ++r) {
          const bool bad = first + r == 2 || first + r == 5;
          for (int64_t c = 0; c < n; ++c) {
            const float got = y.get(size_t(r * n + c)), clean = finite_y.get(size_t(r * n + c));
            if (bad) ASSERT_FALSE(std::isfinite(got)) << kernel << " row " << first + r << " col " << c;
            else ASSERT_EQ(got, clean) << kernel << " row " << first + r << " col " << c;
          }
        }
      });
    }
  }
}

TEST(Linear, EmptyBatchIsANoOp) {
  std::mt19937 rng(26);
  const std::vector<float> wf = random_weights(16, 64, rng);
  const QuantizedWeight w = quantize(wf.data(), DType::f32, 16, 64, 64, QuantFormat{4, 32, QuantZero::symmetric});
  LinearParams p;
  p.k = 64;
  EXPECT_EQ(linear_workspace_size(w, p), 0u);
  linear(w, p);
}

TEST(Linear, Errors) {
  std::mt19937 rng(27);
  const std::vector<float> wf = random_weights(32, 64, rng);
  const QuantizedWeight w = quantize(wf.data(), DType::f32, 32, 64, 64, QuantFormat{4, 32, QuantZero::symmetric});
  Buffer x(DType::bf16, 4 * 64), y(DType::bf16, 4 * 32);
  Workspace ws;
  LinearParams good;
  good.m = 4;
  good.x.data = x.data();
  good.k = 64;
  good.x.stride_token = 64;
  good.y.data = y.data();
  good.y.stride_token = 32;
  ws.reserve(linear_workspace_size(w, good));
  good.workspace = ws.ptr;
  good.workspace_bytes = ws.size;
  linear(w, good);
  auto bad = [&](auto change, std::initializer_list<const char*> words) {
    LinearParams p = good;
    change(p);
    expect_error([&] { linear(w, p); }, words);
  };
  bad([](LinearParams& p) { p.m = -1; }, {"linear", "params.m = -1"});
  bad([](LinearParams& p) { p.k = 63; }, {"params.k = 63", "weight's k = 64"});
  bad([](LinearParams& p) { p.x.stride_token = 60; }, {"x.stride_token = 60", "k = 64"});
  bad([](LinearParams& p) { p.x.data = nullptr; }, {"x"});
  bad([](LinearParams& p) { p.y.data = nullptr; }, {"y"});
  bad([](LinearParams& p) { p.y.stride_token = 16; }, {"y.stride_token"});
  bad([](LinearParams& p) { p.num_threads = 0; }, {"num_threads = 0"});
  // Trust issue, findings 3 and 6: m = x stride = 2^40 overflowed the size products.
  bad([](LinearParams& p) { p.m = p.x.stride_token = int64_t(1) << 40; }, {"params.m = 1099511627776", "[0, 2^31]"});
  bad([](LinearParams& p) { p.num_threads = 1 << 20; }, {"num_threads = 1048576", "[1, 1024]"});
  bad([](LinearParams& p) { p.silu_mul = true; }, {"silu_mul", "gate_up"});
  bad([](LinearParams& p) { p.workspace_bytes -= 1; }, {"workspace_bytes"});
  bad([](LinearParams& p) { p.workspace = nullptr; }, {"workspace is null"});
  bad([](LinearParams& p) { p.workspace = static_cast<char*>(p.workspace) + 4; }, {"64-byte aligned"});
  bad([&](LinearParams& p) { p.y.data = x.data(); }, {"y overlaps x"});
  bad([&](LinearParams& p) { p.residual.data = static_cast<uint16_t*>(y.data()) + 1; p.residual.stride_token = 32; },
      {"residual must be y itself"});
  bad([&](LinearParams& p) { p.residual.data = y.data(); p.residual.stride_token = 32; p.residual.dtype = DType::f32; },
      {"residual.dtype = f32", "y's dtype bf16"});
  bad([](LinearParams& p) { p.activations = LinearActivations(7); }, {"activations = 7"});
  bad([](LinearParams& p) { p.x.dtype = DType(9); }, {"x"});
  expect_error([&] { linear(QuantizedWeight(), good); }, {"empty"});
}

}  // namespace
