// W16A16: unquantized bf16 / fp16 weights (QuantFormat::unquantized). Packing (bit-exact copies
// of same-dtype sources, nearest-even rounding of others, non-finite values refused), the element
// accessors, save / load and tensor-parallel shards; linear() on every kernel this CPU runs
// against reference::linear over value and activation dtypes, m from 1 to 130, odd n and k,
// epilogues and threads; int8 activations refused.
#include <cstring>
#include <string>

#include "linear_call.hpp"
#include "test_util.hpp"

namespace {

using namespace pagedinfer;
using namespace linear_test;
using testutil::Buffer;
using testutil::expect_error;

uint16_t bits_of_value(const Buffer& b, size_t i) { return static_cast<const uint16_t*>(b.data())[i]; }

QuantizedWeight unquantized(const Buffer& w, int64_t n, int64_t k, DType values, bool gate_up = false,
                            int threads = 1) {
  QuantizeOptions o(QuantFormat::unquantized(values));
  o.gate_up = gate_up;
  o.num_threads = threads;
  return quantize(w.data(), w.dtype, n, k, k, o);
}

// Every value of a weight from a bf16 / fp16 source of the same dtype is the source's bits; from
// another dtype it is the source rounded to nearest even; shape and accessors follow quant.hpp.
TEST(Unquantized, PacksValuesExactly) {
  std::mt19937 rng(41);
  const int64_t n = 37, k = 203;  // odd n, k not a multiple of 8
  for (DType source : {DType::f32, DType::bf16, DType::f16})
    for (DType values : {DType::bf16, DType::f16})
      for (bool gate_up : {false, true}) {
        const int64_t rows = gate_up ? 2 * n : n;
        Buffer w(source, size_t(rows * k));
        w.fill_uniform(rng, -2.f, 2.f);
        const QuantizedWeight q = unquantized(w, rows, k, values, gate_up, 2);
        SCOPED_TRACE(testing::Message() << dtype_name(source) << " -> " << dtype_name(values) << " gate_up " << gate_up);
        EXPECT_EQ(q.format().bits, 16);
        EXPECT_EQ(q.format().dtype, values);
        EXPECT_EQ(q.format().zero, QuantZero::none);
        EXPECT_EQ(q.group_size(), k);
        EXPECT_EQ(q.gate_up(), gate_up);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t i = 0; i < k; ++i) {
            const size_t at = size_t(r * k + i);
            const float v = w.get(at);
            const uint16_t expected = source == values ? bits_of_value(w, at)
                                      : values == DType::bf16 ? float_to_bf16(v)
                                                              : float_to_f16(v);
            ASSERT_EQ(uint16_t(q.q(r, i)), expected) << r << "," << i;
            const double value = values == DType::bf16 ? bf16_to_float(expected) : f16_to_float(expected);
            ASSERT_EQ(q.dequantize(r, i), value);
            ASSERT_EQ(q.scale(r, i), 1.0);
            ASSERT_EQ(q.offset(r, i), 0.0);
            ASSERT_EQ(q.error_magnitude(r, i), std::fabs(value));
          }
        // 16 bits per weight, padded to whole tiles and k to a multiple of 8; no group params.
        const int64_t rows_packed = gate_up ? 2 * ((n + 31) / 32 * 32) : (rows + 63) / 64 * 64;
        EXPECT_EQ(q.bytes(), rows_packed * 208 * 2);
      }
}

TEST(Unquantized, RefusesWhatItCannotHold) {
  Buffer w(DType::f32, 4 * 8);
  w.set(13, 70000.f);  // finite in bf16, beyond fp16
  EXPECT_NO_THROW(unquantized(w, 4, 8, DType::bf16));
  expect_error([&] { unquantized(w, 4, 8, DType::f16); }, {"quantize", "w[1][5] = 70000", "not finite as f16"});
  w.set(13, NAN);
  expect_error([&] { unquantized(w, 4, 8, DType::bf16); }, {"w[1][5] = nan", "not finite as bf16"});
  w.set(13, 0.f);
  const auto bad_format = [&](QuantFormat f, std::initializer_list<const char*> words) {
    expect_error([&] { quantize(w.data(), DType::f32, 4, 8, 8, f); }, words);
  };
  bad_format(QuantFormat{16, 128, QuantZero::none, DType::bf16}, {"group_size 0", "QuantFormat::unquantized"});
  bad_format(QuantFormat{16, 0, QuantZero::symmetric, DType::bf16}, {"zero none"});
  bad_format(QuantFormat{16, 0, QuantZero::none, DType::f32}, {"format.dtype = f32", "bf16 or f16"});
  bad_format(QuantFormat{4, 0, QuantZero::none}, {"format.zero = 3", "4- and 8-bit"});
  bad_format(QuantFormat{12, 0, QuantZero::none}, {"format.bits = 12", "4, 8 or 16"});
}

// save / load keep every bit (and the value dtype); shards hold the weight's values at the
// mapped indices.
TEST(Unquantized, SavesLoadsAndShards) {
  std::mt19937 rng(42);
  const int64_t n = 96, k = 256;
  for (DType values : {DType::bf16, DType::f16}) {
    Buffer w(DType::f32, size_t(n * k));
    w.fill_uniform(rng, -1.f, 1.f);
    const QuantizedWeight q = unquantized(w, n, k, values);
    const std::vector<uint8_t> bytes = save_weight(q);
    const QuantizedWeight back = load_weight(bytes.data(), bytes.size());
    EXPECT_EQ(back.format().dtype, values);
    EXPECT_EQ(save_weight(back), bytes);
    const std::vector<int64_t> qkv = {64, 16, 16};
    const QuantizedWeight column = shard_output_features(q, 1, 2, qkv);
    const QuantizedWeight row = shard_input_features(q, 1, 2);
    ASSERT_EQ(column.n(), n / 2);
    ASSERT_EQ(row.k(), k / 2);
    for (int64_t r = 0; r < n / 2; ++r) {
      const int64_t source_row = r < 32 ? 32 + r : r < 40 ? 64 + 8 + (r - 32) : 80 + 8 + (r - 40);
      for (int64_t i = 0; i < k; ++i) ASSERT_EQ(column.q(r, i), q.q(source_row, i)) << r << "," << i;
    }
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < k / 2; ++i) ASSERT_EQ(row.q(r, i), q.q(r, k / 2 + i)) << r << "," << i;
    std::mt19937 call_rng(43);
    Call on_row_shard(row, 3, DType::bf16, DType::f32, LinearActivations::float_, call_rng);
    on_row_shard.check_every_kernel();
  }
}

struct Case {
  DType values, x;
};

class UnquantizedSweep : public ::testing::TestWithParam<Case> {};

TEST_P(UnquantizedSweep, MatchesReferenceOnEveryKernel) {
  const Case c = GetParam();
  std::mt19937 rng(uint32_t(44 + 3 * int(c.values) + int(c.x)));
  const int64_t n = 67, k = 203;
  Buffer wf(DType::f32, size_t(n * k));
  wf.fill_uniform(rng, -0.2f, 0.2f);
  const QuantizedWeight w = unquantized(wf, n, k, c.values);
  for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 33, 130}) {
    SCOPED_TRACE(testing::Message() << "m " << m);
    Call call(w, m, c.x, c.x, LinearActivations::float_, rng);
    call.check_every_kernel(m > 16 ? 2 : 1);
    if (HasFatalFailure()) return;
  }
}

std::vector<Case> sweep_cases() {
  std::vector<Case> out;
  for (DType values : {DType::bf16, DType::f16})
    for (DType x : {DType::f32, DType::bf16, DType::f16}) out.push_back({values, x});
  return out;
}

std::string sweep_name(const ::testing::TestParamInfo<Case>& i) {
  return std::string("w") + dtype_name(i.param.values) + "_x" + dtype_name(i.param.x);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, UnquantizedSweep, ::testing::ValuesIn(sweep_cases()), sweep_name);

TEST(Unquantized, EpiloguesBiasResidualAndSiluMul) {
  std::mt19937 rng(45);
  const int64_t half = 40, k = 256;
  Buffer wf(DType::f32, size_t(2 * half * k));
  wf.fill_uniform(rng, -0.1f, 0.1f);
  for (DType values : {DType::bf16, DType::f16}) {
    const QuantizedWeight w = unquantized(wf, 2 * half, k, values, /*gate_up=*/true);
    for (bool silu : {false, true})
      for (int64_t m : {1, 9, 37}) {
        SCOPED_TRACE(testing::Message() << dtype_name(values) << " silu " << silu << " m " << m);
        Call call(w, m, DType::bf16, DType::bf16, LinearActivations::float_, rng, /*bias=*/true, /*residual=*/true,
                  silu);
        call.check_every_kernel(2);
        if (HasFatalFailure()) return;
      }
  }
}

// Many rows on two threads and on one give the same bits (row blocks, column ranges).
TEST(Unquantized, LargeMAndTwoThreadsAreDeterministic) {
  std::mt19937 rng(46);
  const int64_t n = 200, k = 512;
  Buffer wf(DType::bf16, size_t(n * k));
  wf.fill_uniform(rng, -0.1f, 0.1f);
  const QuantizedWeight w = unquantized(wf, n, k, DType::bf16);
  Call call(w, 512, DType::bf16, DType::bf16, LinearActivations::float_, rng);
  call.check_every_kernel_thread_invariant();
}

// bf16 weights with bf16 x run on bf16 dot products where the CPU has them; fp16 weights never
// do (their values are not bf16); int8 activations are refused.
TEST(Unquantized, KernelChoiceAndInt8Refusal) {
  Buffer wf(DType::f32, 64 * 64);
  const QuantizedWeight bf16 = unquantized(wf, 64, 64, DType::bf16), f16 = unquantized(wf, 64, 64, DType::f16);
  LinearParams p;
  p.m = 4;
  p.k = 64;
  p.x.dtype = DType::bf16;
  const bool dot = (active_features() & feature_bit(CpuFeature::avx512_bf16)) != 0;
  EXPECT_EQ(linear_unit(bf16, p) == LinearUnit::bf16_dot, dot);
  EXPECT_EQ(linear_unit(f16, p), LinearUnit::fp32_fma);
  p.x.dtype = DType::f32;
  EXPECT_EQ(linear_unit(bf16, p), LinearUnit::fp32_fma);
  Buffer x(DType::f32, 4 * 64), y(DType::f32, 4 * 64);
  LinearParams a = int8_params(4, 64, 64, x, y);
  expect_error([&] { run_linear(bf16, a); }, {"int8_per_token needs a 4- or 8-bit weight", "unquantized bf16"});
}

}  // namespace
