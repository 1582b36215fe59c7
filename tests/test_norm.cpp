// rms_norm and fused_add_rms_norm against the double-precision reference with every registered kernel this
// host runs: activation x weight dtypes, sizes with and without SIMD tails, Gemma's (1 + w),
// per-head QK norm over padded strides, in and out of place, 1 and 2 threads; plus errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "test_util.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

struct NormCase {
  DType x = DType::bf16, w = DType::bf16;
  int64_t tokens = 5;
  int32_t heads = 1, dim = 4096;
  int64_t head_pad = 0, token_pad = 0;  // extra elements between rows: strided views
  bool gemma = false, in_place = false;
  int threads = 1;
};

std::string describe(const NormCase& c) {
  return std::string(dtype_name(c.x)) + "/w:" + dtype_name(c.w) + " tokens " + std::to_string(c.tokens) + " heads " +
         std::to_string(c.heads) + " dim " + std::to_string(c.dim) + (c.gemma ? " gemma" : "") +
         (c.in_place ? " in-place" : "") + " threads " + std::to_string(c.threads);
}

// A [tokens, heads, dim] tensor with padded strides, filled with values spanning several binades.
struct Rows {
  Buffer buf;
  int64_t stride_head, stride_token;
  Rows(const NormCase& c, DType t, std::mt19937& rng)
      : stride_head(c.dim + c.head_pad), stride_token(c.heads * (c.dim + c.head_pad) + c.token_pad) {
    buf = Buffer(t, std::size_t(c.tokens * stride_token));
    buf.fill(std::numeric_limits<float>::quiet_NaN());  // padding: must never be read into a result
    std::uniform_real_distribution<float> u(-2.f, 2.f);
    for (int64_t tk = 0; tk < c.tokens; ++tk)
      for (int32_t h = 0; h < c.heads; ++h) {
        const float magnitude = std::ldexp(1.f, int((tk * 7 + h * 3) % 13) - 6);  // 2^-6 .. 2^6 per row
        for (int32_t d = 0; d < c.dim; ++d) buf.set(index(tk, h, d), u(rng) * magnitude);
      }
  }
  std::size_t index(int64_t t, int32_t h, int32_t d) const { return std::size_t(t * stride_token + h * stride_head + d); }
  TokensView view() const { return {buf.data(), buf.dtype, stride_token, stride_head}; }
  OutTokensView out() { return {buf.data(), buf.dtype, stride_token, stride_head}; }
};

// |kernel - exact| for one element. The fp32 kernel's relative error: the sum of squares (dim
// terms, <= dim u), then divide, add eps, sqrt, reciprocal and two products (6 u); then one
// rounding to the storage type; the f32 reference itself carries u32.
double norm_tolerance(const NormCase& c, double ref) {
  const double u32 = unit_roundoff(DType::f32), us = unit_roundoff(c.x);
  const double fp32 = (c.dim / 2.0 + 6.0) * u32;
  const double floor = c.x == DType::f16 ? std::ldexp(1.0, -25) : 0.0;  // half the f16 subnormal step
  return std::abs(ref) * (fp32 + us * (1 + fp32) + u32) + floor;
}

RmsNormParams params_of(const NormCase& c, const Buffer& w) {
  RmsNormParams p;
  p.num_tokens = c.tokens;
  p.num_heads = c.heads;
  p.dim = c.dim;
  p.weight = w.data();
  p.weight_dtype = c.w;
  p.eps = 1e-6f;
  p.weight_plus_one = c.gemma;
  p.num_threads = c.threads;
  return p;
}

Buffer make_weight(const NormCase& c, std::mt19937& rng) {
  Buffer w(c.w, std::size_t(c.dim));
  w.fill_uniform(rng, c.gemma ? -0.5f : -1.5f, c.gemma ? 0.5f : 1.5f);
  return w;
}

// Compares every element of `got` with the f32 reference `ref` (same shape).
void expect_rows_near(const NormCase& c, const Rows& got, const Rows& ref, const std::string& what) {
  int bad = 0;
  for (int64_t t = 0; t < c.tokens; ++t)
    for (int32_t h = 0; h < c.heads; ++h)
      for (int32_t d = 0; d < c.dim && bad < 5; ++d) {
        const double r = ref.buf.get(ref.index(t, h, d)), g = got.buf.get(got.index(t, h, d));
        if (!(std::abs(g - r) <= norm_tolerance(c, r))) {
          ++bad;
          ADD_FAILURE() << what << " " << describe(c) << " at (" << t << ", " << h << ", " << d << "): got " << g
                        << ", reference " << r;
        }
      }
}

// The f32 copy of a tensor (exact), for reference runs without storage rounding.
Rows as_f32(const NormCase& c, const Rows& r) {
  std::mt19937 unused;
  NormCase f = c;
  f.x = DType::f32;
  Rows out(f, DType::f32, unused);
  for (std::size_t i = 0; i < r.buf.n; ++i) out.buf.set(i, r.buf.get(i));
  return out;
}

void check_rms_norm(const NormCase& c) {
  std::mt19937 rng(uint32_t(std::hash<std::string>{}(describe(c))));
  const Rows x(c, c.x, rng);
  const Buffer w = make_weight(c, rng);
  // Reference in f32 storage: the kernel's single rounding is then the only storage rounding.
  Rows ref = as_f32(c, x);
  RmsNormParams pr = params_of(c, w);
  reference::rms_norm(testutil::with_io(pr, ref.view(), ref.out()));
  testutil::for_each_kernel("norm", [&] { return rms_norm_kernel_name(c.x, c.w); }, [&](const std::string& kernel) {
    Rows y(c, c.x, rng);
    if (c.in_place) {
      y = x;
      rms_norm(testutil::with_io(pr, y.view(), y.out()));
    } else {
      rms_norm(testutil::with_io(pr, x.view(), y.out()));
    }
    expect_rows_near(c, y, ref, std::string("rms_norm kernel ") + kernel);
  });
}

void check_fused(const NormCase& c) {
  std::mt19937 rng(uint32_t(std::hash<std::string>{}(describe(c) + "fused")));
  const Rows x(c, c.x, rng), residual(c, c.x, rng);
  const Buffer w = make_weight(c, rng);
  RmsNormParams pr = params_of(c, w);
  // Reference: the residual in its own dtype (its rounding is the contract), the output in f32.
  Rows ref_res = residual, ref_x = x;
  reference::fused_add_rms_norm(testutil::with_io(pr, ref_x.out(), ref_x.out(), ref_res.out()));
  Rows ref_y = as_f32(c, ref_res);
  reference::rms_norm(testutil::with_io(pr, ref_y.view(), ref_y.out()));
  testutil::for_each_kernel("norm", [&] { return rms_norm_kernel_name(c.x, c.w); }, [&](const std::string& kernel) {
    Rows fx = x, fres = residual;
    fused_add_rms_norm(testutil::with_io(pr, fx.out(), fx.out(), fres.out()));
    EXPECT_EQ(0, std::memcmp(fres.buf.data(), ref_res.buf.data(), fres.buf.bytes()))
        << "residual must be round(x + residual) exactly; " << describe(c) << " kernel " << kernel;
    expect_rows_near(c, fx, ref_y, std::string("fused_add_rms_norm kernel ") + kernel);
    // Bitwise equal to the unfused pair on the same ISA.
    Rows y2 = x;
    rms_norm(testutil::with_io(pr, ref_res.view(), y2.out()));
    EXPECT_EQ(0, std::memcmp(y2.buf.data(), fx.buf.data(), fx.buf.bytes()))
        << "fused must equal add + rms_norm bitwise; " << describe(c) << " kernel " << kernel;
  });
}

std::vector<NormCase> cases() {
  std::vector<NormCase> out;
  for (DType x : {DType::f32, DType::bf16, DType::f16})
    for (DType w : {DType::f32, DType::bf16, DType::f16}) {
      NormCase c;
      c.x = x;
      c.w = w;
      out.push_back(c);
    }
  for (int32_t dim : {1, 3, 8, 15, 16, 17, 31, 33, 64, 65, 100, 127, 129, 896, 2048 + 5, 5120, 8192 + 24}) {
    NormCase c;
    c.dim = dim;
    c.tokens = 3;
    c.token_pad = dim % 3;
    out.push_back(c);
  }
  NormCase gemma;
  gemma.gemma = true;
  gemma.dim = 2304;  // Gemma-2 2B hidden size
  out.push_back(gemma);
  NormCase qk;  // Qwen3 QK norm: 32 heads of 128 inside a padded buffer
  qk.heads = 32;
  qk.dim = 128;
  qk.head_pad = 8;
  qk.token_pad = 40;
  qk.tokens = 9;
  out.push_back(qk);
  NormCase qk_gemma = qk;  // Gemma-3 QK norm, fp16 with f32 weights, odd head dim
  qk_gemma.gemma = true;
  qk_gemma.x = DType::f16;
  qk_gemma.w = DType::f32;
  qk_gemma.dim = 72;
  out.push_back(qk_gemma);
  NormCase in_place;
  in_place.in_place = true;
  in_place.x = DType::f16;
  out.push_back(in_place);
  NormCase threads;
  threads.threads = 2;
  threads.tokens = 67;
  threads.dim = 1000;
  out.push_back(threads);
  NormCase threads_qk = qk;
  threads_qk.threads = 2;
  threads_qk.tokens = 70;
  out.push_back(threads_qk);
  NormCase empty;
  empty.tokens = 0;
  out.push_back(empty);
  // Outputs of 1 MiB and more take the streaming-store path (AVX-512, bf16 out of place):
  // 64-byte aligned rows, then rows of which only some are aligned, with a tail per row.
  NormCase stream;
  stream.tokens = 160;
  stream.threads = 2;
  out.push_back(stream);
  NormCase stream_ragged = stream;
  stream_ragged.tokens = 131;
  stream_ragged.dim = 4100;
  stream_ragged.token_pad = 4;
  out.push_back(stream_ragged);
  return out;
}

class RmsNormTest : public ::testing::TestWithParam<NormCase> {};

TEST_P(RmsNormTest, MatchesReference) { check_rms_norm(GetParam()); }
TEST_P(RmsNormTest, FusedAddMatchesReference) { check_fused(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Cases, RmsNormTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return "case" + std::to_string(info.index); });

TEST(RmsNorm, ThreadCountDoesNotChangeBits) {
  NormCase c;
  c.tokens = 64;
  c.dim = 3000;
  std::mt19937 rng(7);
  const Rows x(c, c.x, rng);
  const Buffer w = make_weight(c, rng);
  Rows y1 = x, y2 = x;
  RmsNormParams p = params_of(c, w);
  rms_norm(testutil::with_io(p, x.view(), y1.out()));
  p.num_threads = 2;
  rms_norm(testutil::with_io(p, x.view(), y2.out()));
  EXPECT_EQ(0, std::memcmp(y1.buf.data(), y2.buf.data(), y1.buf.bytes()));
}

TEST(RmsNorm, NamesBadArguments) {
  NormCase c;
  c.tokens = 2;
  c.dim = 64;
  std::mt19937 rng(1);
  Rows x(c, c.x, rng), y(c, c.x, rng);
  const Buffer w = make_weight(c, rng);
  auto call = [&](auto edit) {
    return [&, edit] {
      RmsNormParams p = params_of(c, w);
      TokensView in = x.view();
      OutTokensView out = y.out();
      edit(p, in, out);
      rms_norm(testutil::with_io(p, in, out));
    };
  };
  expect_error(call([](RmsNormParams& p, TokensView&, OutTokensView&) { p.weight = nullptr; }), {"params.weight", "null"});
  expect_error(call([](RmsNormParams& p, TokensView&, OutTokensView&) { p.eps = 0; }), {"params.eps", "> 0"});
  expect_error(call([](RmsNormParams& p, TokensView&, OutTokensView&) { p.eps = -1e-6f; }), {"params.eps"});
  expect_error(call([](RmsNormParams& p, TokensView&, OutTokensView&) { p.dim = 0; }), {"params.dim"});
  expect_error(call([](RmsNormParams& p, TokensView&, OutTokensView&) { p.num_tokens = -1; }), {"num_tokens"});
  expect_error(call([](RmsNormParams& p, TokensView&, OutTokensView&) { p.num_threads = 0; }), {"num_threads"});
  expect_error(call([](RmsNormParams&, TokensView& in, OutTokensView&) { in.data = nullptr; }), {"input.data", "null"});
  expect_error(call([](RmsNormParams&, TokensView&, OutTokensView& out) { out.dtype = DType::f32; }),
               {"output.dtype", "input.dtype"});
  expect_error(call([](RmsNormParams&, TokensView& in, OutTokensView&) { in.stride_token = 10; }),
               {"input strides", "overlap"});
  expect_error(call([&](RmsNormParams&, TokensView&, OutTokensView& out) {
                 out.data = static_cast<uint16_t*>(const_cast<void*>(x.view().data)) + 8;
               }),
               {"output", "overlap"});
  expect_error(call([](RmsNormParams&, TokensView& in, OutTokensView&) {
                 in.data = static_cast<const char*>(in.data) + 1;
               }),
               {"input.data", "aligned"});
  OutTokensView res = x.out();
  RmsNormParams p = params_of(c, w);
  expect_error([&] { fused_add_rms_norm(testutil::with_io(p, res, res, res)); }, {"residual must not overlap"});
  OutTokensView res32 = y.out();
  res32.dtype = DType::f32;
  expect_error([&] { fused_add_rms_norm(testutil::with_io(p, x.out(), x.out(), res32)); }, {"residual.dtype", "input.dtype"});
}

}  // namespace
