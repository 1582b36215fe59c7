// paged_attention over quantized KV caches (fp8 e4m3 / e5m2, int8 with row scales) on every
// kernel this host runs, against the reference over the dequantized cache; and the reference
// itself against attention over an fp32 cache holding the dequantized values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "quantized_batch.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

struct QCase {
  std::string name;
  DType kv = DType::i8;
  Layout layout = Layout::nhd;
  std::vector<std::pair<int32_t, int32_t>> reqs = {{1, 37}, {1, 1}, {5, 5}, {7, 50}, {0, 20}, {1, 130}, {16, 16}};
  int32_t qo_heads = 8, kv_heads = 2, dq = 128, dv = 128, page = 16;
  DType q = DType::bf16;
  int threads = 1;
  int32_t kv_chunk = 0;
  bool causal = true, sinks = false;
  int32_t window_left = -1;
};

std::ostream& operator<<(std::ostream& os, const QCase& c) { return os << c.name; }

struct QAttention {
  const QCase& c;
  std::vector<int32_t> q_indptr{0};
  QuantizedBatch kv;
  Buffer q;
  std::vector<float> sinks;
  int64_t total_q = 0;

  static std::vector<int32_t> lens(const QCase& c) {
    std::vector<int32_t> l;
    for (auto [ql, kl] : c.reqs) l.push_back(kl);
    return l;
  }

  explicit QAttention(const QCase& cs)
      : c(cs), kv(cs.kv, cs.layout, lens(cs), cs.kv_heads, cs.dq, cs.dv, cs.page) {
    for (auto [ql, kl] : c.reqs) q_indptr.push_back(q_indptr.back() + ql);
    total_q = q_indptr.back();
    q = Buffer(c.q, std::size_t(total_q) * c.qo_heads * c.dq);
    q.fill_uniform(kv.rng, -1.f, 1.f);
    for (int32_t h = 0; h < c.qo_heads; ++h) sinks.push_back(float(h % 3) - 1.f);
  }

  AttentionParams params(const KVCacheView& cache, bool csr, float* out, float* lse) {
    AttentionParams p;
    p.q = {q.data(), c.q, int64_t(c.qo_heads) * c.dq, c.dq};
    p.q_indptr = q_indptr.data();
    p.num_q_heads = c.qo_heads;
    p.cache = cache;
    p.pages = kv.pages.table(csr);
    p.out = {out, DType::f32, int64_t(c.qo_heads) * c.dv, c.dv};
    p.lse = lse;
    p.scale = 1.f / std::sqrt(float(c.dq));
    p.causal = c.causal;
    p.window_left = c.window_left;
    p.sinks = c.sinks ? sinks.data() : nullptr;
    return p;
  }

  std::size_t out_size() const { return std::size_t(total_q) * c.qo_heads * c.dv; }

  // attention.hpp's fp32 bound, as test_attention.cpp derives it, for |q|, |k|, |v| <= 1.1.
  double tolerance(int32_t kv_len, double ref) const {
    const double u = std::ldexp(1.0, -24), m = 1.1;
    const double e_s = (c.dq + 8) * u * std::sqrt(double(c.dq)) * m * m + 4 * u * std::sqrt(double(c.dq)) * m * m;
    return 2 * (2 * e_s + 4 * u) * m + 2 * (kv_len + 8) * u * m + u * std::fabs(ref) + 1e-30;
  }
};

class QuantizedAttention : public ::testing::TestWithParam<QCase> {};

TEST_P(QuantizedAttention, MatchesReferenceOnEveryKernel) {
  const QCase& c = GetParam();
  QAttention a(c);
  std::vector<float> ref(a.out_size()), ref_lse(std::size_t(a.total_q) * c.qo_heads);
  reference::paged_attention(a.params(a.kv.pool.view, false, ref.data(), ref_lse.data()));
  AttentionProblem pr = attention_problem(a.q_indptr, a.kv.kv_len, c.qo_heads, c.kv_heads, c.dq, c.dv, c.threads);
  pr.kv_chunk = c.kv_chunk;
  const AttentionPlan plan = plan_attention(pr);
  Buffer ws(DType::f32, plan.workspace_bytes / 4 + 1);
  for_each_kernel("attention", [&] { return attention_kernel_name(c.q, c.kv); }, [&](const std::string& name) {
    for (bool csr : {false, true}) {
      std::vector<float> out(a.out_size(), 1024.f), lse(ref_lse.size(), -7.f);
      AttentionParams p = a.params(a.kv.pool.view, csr, out.data(), lse.data());
      p.workspace = ws.data();
      p.workspace_bytes = plan.workspace_bytes;
      paged_attention(plan, p);
      for (std::size_t r = 0; r + 1 < a.q_indptr.size(); ++r)
        for (int64_t t = a.q_indptr[r]; t < a.q_indptr[r + 1]; ++t)
          for (int32_t h = 0; h < c.qo_heads; ++h) {
            const std::size_t row = std::size_t(t) * c.qo_heads + h;
            for (int32_t d = 0; d < c.dv; ++d) {
              const double want = ref[row * c.dv + d];
              ASSERT_NEAR(out[row * c.dv + d], want, a.tolerance(a.kv.kv_len[r], want))
                  << name << (csr ? "/csr" : "/padded") << ": request " << r << " token " << t << " head " << h << " dim " << d;
            }
            ASSERT_NEAR(lse[row], ref_lse[row], 1e-5 * (1 + std::fabs(ref_lse[row]))) << name << " lse row " << row;
          }
    }
  });
}

// The reference's dequantization against an fp32 cache holding stored value * scale, rounded
// to fp32 (QuantizedBatch::at); the two differ by that rounding only.
TEST_P(QuantizedAttention, ReferenceDequantizesAsTheCacheContractStates) {
  const QCase& c = GetParam();
  if (c.layout == Layout::latent) GTEST_SKIP() << "writing V of a latent fp32 copy would write K";
  QAttention a(c);
  Pool f32(c.layout, DType::f32, a.kv.pool.view.num_pages, c.page, c.kv_heads, c.dq, c.dv);
  for (std::size_t r = 0; r < a.kv.kv_len.size(); ++r)
    for (int32_t j = 0; j < a.kv.kv_len[r]; ++j) {
      const int64_t pg = a.kv.pages.page_indices[std::size_t(a.kv.pages.page_indptr[r] + j / c.page)];
      for (int32_t h = 0; h < c.kv_heads; ++h) {
        for (int32_t d = 0; d < c.dq; ++d) f32.set(0, pg, j % c.page, h, d, a.kv.at(false, pg, j % c.page, h, d));
        for (int32_t d = 0; d < c.dv; ++d) f32.set(1, pg, j % c.page, h, d, a.kv.at(true, pg, j % c.page, h, d));
      }
    }
  std::vector<float> want(a.out_size()), got(a.out_size());
  reference::paged_attention(a.params(f32.view, false, want.data(), nullptr));
  reference::paged_attention(a.params(a.kv.pool.view, false, got.data(), nullptr));
  for (std::size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-6) << "element " << i;
}

std::vector<QCase> cases() {
  std::vector<QCase> v;
  auto add = [&](std::string name, DType kv, auto&& edit) {
    QCase c;
    c.name = std::move(name) + "_" + dtype_name(kv);
    c.kv = kv;
    edit(c);
    v.push_back(c);
  };
  for (DType kv : {DType::i8, DType::f8_e4m3, DType::f8_e5m2}) {
    add("mixed_batch", kv, [](QCase&) {});
    add("hnd_page_7_f32q", kv, [](QCase& c) { c.layout = Layout::hnd; c.page = 7; c.q = DType::f32; });
    add("combined_head_dim_72", kv, [](QCase& c) { c.layout = Layout::combined_nhd; c.dq = c.dv = 72; });
    add("prefill_window_sinks", kv, [](QCase& c) {
      c.reqs = {{64, 64}, {33, 100}};
      c.window_left = 40;
      c.sinks = true;
    });
    add("split_kv_threads_2", kv, [](QCase& c) {
      c.threads = 2;
      c.kv_chunk = 64;
      c.reqs = {{1, 700}, {3, 90}, {1, 5}};
      c.q = DType::f16;
    });
    add("non_causal_mqa", kv, [](QCase& c) { c.causal = false; c.kv_heads = 1; c.dq = c.dv = 64; });
  }
  for (DType kv : {DType::i8, DType::f8_e4m3})
    add("mla_latent", kv, [](QCase& c) {
      c.layout = Layout::latent;
      c.dq = 576;
      c.dv = 512;
      c.qo_heads = 16;
      c.kv_heads = 1;
      c.reqs = {{1, 70}, {4, 40}};
    });
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cases, QuantizedAttention, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace

// Every 8-bit code widened by every kernel: one key, so the output is its V row exactly (P = 1,
// v_scale 1), a row holding all 256 codes; NaN codes must read as NaN.
TEST(QuantizedAttentionCodes, EveryKernelWidensEveryCodeExactly) {
  for (DType kv : {DType::i8, DType::f8_e4m3, DType::f8_e5m2}) {
    SCOPED_TRACE(dtype_name(kv));
    Pool pool(Layout::nhd, kv, 1, 1, 1, 256, 256);
    std::memset(pool.k.data(), 0, pool.k.bytes());  // K = 0 (i8: codes and scale 0)
    std::memset(pool.v.data(), 0, pool.v.bytes());
    auto* v = static_cast<uint8_t*>(pool.view.v.data);
    for (int c = 0; c < 256; ++c) v[c] = uint8_t(c);
    if (kv == DType::i8) pool.view.v.scale[0] = 1.f;
    std::vector<float> q(256, 0.5f), out(256);
    const std::vector<int32_t> q_indptr = {0, 1}, kv_len = {1}, table = {0};
    const AttentionPlan plan = plan_attention(attention_problem(q_indptr, kv_len, 1, 1, 256, 256, 1));
    Buffer ws(DType::f32, plan.workspace_bytes / 4 + 1);
    AttentionParams p;
    p.q = {q.data(), DType::f32, 256, 256};
    p.q_indptr = q_indptr.data();
    p.num_q_heads = 1;
    p.cache = pool.view;
    p.pages.num_reqs = 1;
    p.pages.kv_len = kv_len.data();
    p.pages.block_table = table.data();
    p.pages.block_table_cols = 1;
    p.out = {out.data(), DType::f32, 256, 256};
    p.scale = 1.f;
    p.workspace = ws.data();
    p.workspace_bytes = plan.workspace_bytes;
    for_each_kernel("attention", [&] { return attention_kernel_name(DType::f32, kv); }, [&](const std::string& name) {
      paged_attention(plan, p);
      for (int c = 0; c < 256; ++c) {
        const float want = kv == DType::i8        ? float(int8_t(c))
                           : kv == DType::f8_e4m3 ? f8_e4m3_to_float(uint8_t(c))
                                                  : f8_e5m2_to_float(uint8_t(c));
        if (std::isnan(want)) ASSERT_TRUE(std::isnan(out[std::size_t(c)])) << name << " code " << c;
        else ASSERT_EQ(out[std::size_t(c)], want) << name << " code " << c;
      }
    });
  }
}
