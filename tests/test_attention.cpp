// paged_attention against the double-precision reference: every registered kernel this host runs,
// both page-table forms, every layout, dtype, head dim, page size, GQA ratio and option.
#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <thread>

#include "test_util.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

struct Case {
  std::string name;
  std::vector<std::pair<int32_t, int32_t>> reqs = {{1, 37}, {1, 1}, {5, 5}, {7, 50}, {0, 20}, {3, 33}, {1, 130}, {16, 16}};
  int32_t qo_heads = 8, kv_heads = 2, dq = 128, dv = 128, page = 16;
  DType q = DType::bf16, kv = DType::bf16, out = DType::bf16;
  Layout layout = Layout::nhd;
  bool causal = true;
  int32_t window_left = -1, window_right = -1;
  float softcap = 0.f;
  bool alibi = false, sinks = false, lse = true;
  float q_range = 1.f;  // |q| bound; larger makes the softmax sharper
  int threads = 1;
  int32_t kv_chunk = 0;
  enum class Mask { none, packed, dense } mask = Mask::none;  // random custom masks
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

// One batch of one case: inputs, the reference result and a runner for the kernel.
struct Batch {
  const Case& c;
  std::mt19937 rng;
  std::vector<int32_t> q_indptr{0}, kv_len;
  Pages pages;
  Pool pool;
  Buffer q, out;
  std::vector<float> alibi, sinks, ref_out, ref_lse;
  std::vector<uint8_t> mask;
  std::vector<int64_t> mask_indptr{0};
  std::vector<float> ref_abs_out, saved_v;  // sum_j p_j |v_j| per output element: the scale of errors in P
  int64_t total_q = 0;
  int64_t q_stride_head, out_stride_head;
  static constexpr float kSentinel = 1024.f;  // in every output element the kernel must not write

  static std::vector<int32_t> lens_of(const Case& c) {
    std::vector<int32_t> l;
    for (auto [ql, kl] : c.reqs) l.push_back(kl);
    return l;
  }

  explicit Batch(const Case& cs)
      : c(cs),
        rng(uint32_t(std::hash<std::string>{}(cs.name))),
        kv_len(lens_of(cs)),
        pages(kv_len, cs.page, Pages::pages_needed(kv_len, cs.page) + 5, rng),
        pool(cs.layout, cs.kv, Pages::pages_needed(kv_len, cs.page) + 5, cs.page, cs.kv_heads, cs.dq, cs.dv),
        q_stride_head(cs.dq + 8),
        out_stride_head(cs.dv + 8) {
    for (auto [ql, kl] : c.reqs) q_indptr.push_back(q_indptr.back() + ql);
    total_q = q_indptr.back();
    // NaN everywhere a correct kernel never reads: unused pages, slots past kv_len.
    pool.k.fill(std::numeric_limits<float>::quiet_NaN());
    if (pool.v.n) pool.v.fill(std::numeric_limits<float>::quiet_NaN());
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (std::size_t r = 0; r < kv_len.size(); ++r)
      for (int32_t j = 0; j < kv_len[r]; ++j) {
        const int64_t page = pages.page_indices[std::size_t(pages.page_indptr[r] + j / c.page)];
        for (int32_t h = 0; h < c.kv_heads; ++h) {
          for (int32_t d = 0; d < c.dq; ++d) pool.set(0, page, j % c.page, h, d, u(rng));
          for (int32_t d = 0; d < c.dv; ++d) pool.set(1, page, j % c.page, h, d, u(rng));
        }
      }
    saved_v.resize(std::size_t(pool.view.num_pages) * c.page * c.kv_heads * c.dv);
    for_each_value([&](int64_t page, int32_t tok, int32_t h, int32_t d) {
      saved_v[std::size_t(((page * c.page + tok) * c.kv_heads + h) * c.dv + d)] = pool.at(1, page, tok, h, d);
    });
    q = Buffer(c.q, std::size_t(total_q) * c.qo_heads * q_stride_head);
    q.fill_uniform(rng, -c.q_range, c.q_range);
    out = Buffer(c.out, std::size_t(total_q) * c.qo_heads * out_stride_head);
    for (int32_t h = 0; h < c.qo_heads; ++h) {
      alibi.push_back(std::pow(2.f, -8.f * float(h + 1) / float(c.qo_heads)));
      sinks.push_back(u(rng) * 2.f);
    }
    if (c.mask != Case::Mask::none) make_mask();
    // The reference writes fp32 so that the comparison sees the kernel's own rounding only.
    ref_out.assign(std::size_t(total_q) * c.qo_heads * c.dv, 0.f);
    ref_lse.assign(std::size_t(total_q) * c.qo_heads, 0.f);
    AttentionParams p = params(false, nullptr);
    p.out = {ref_out.data(), DType::f32, int64_t(c.qo_heads) * c.dv, c.dv};
    p.lse = ref_lse.data();
    reference::paged_attention(p);
    if (c.layout == Layout::latent) {  // |V| would change K too: bound sum_j p_j |v_j| / Z by max |v| = 1
      ref_abs_out.assign(ref_out.size(), 1.f);
      return;
    }
    // The same attention over |V|, for the tolerance of kernels that round P.
    for_each_value([&](int64_t page, int32_t tok, int32_t h, int32_t d) {
      pool.set(1, page, tok, h, d, std::fabs(pool.at(1, page, tok, h, d)));
    });
    ref_abs_out.assign(ref_out.size(), 0.f);
    p.out.data = ref_abs_out.data();
    p.lse = nullptr;
    reference::paged_attention(p);
    for_each_value([&](int64_t page, int32_t tok, int32_t h, int32_t d) {
      pool.set(1, page, tok, h, d, saved_v[std::size_t(((page * c.page + tok) * c.kv_heads + h) * c.dv + d)]);
    });
  }

  // A random custom mask, half the keys visible, and some query rows that see none.
  void make_mask() {
    const bool packed = c.mask == Case::Mask::packed;
    for (std::size_t r = 0; r < kv_len.size(); ++r) {
      const int64_t q_len = q_indptr[r + 1] - q_indptr[r], n = q_len * kv_len[r];
      std::vector<uint8_t> seg(std::size_t(packed ? (n + 7) / 8 : n), 0);
      for (int64_t k = 0; k < n; ++k) {
        const bool row_hidden = (k / std::max(1, kv_len[r])) % 5 == 3;
        if (row_hidden || rng() % 2) continue;
        if (packed) seg[std::size_t(k / 8)] |= uint8_t(1u << (k % 8));
        else seg[std::size_t(k)] = uint8_t(1 + rng() % 255);
      }
      mask.insert(mask.end(), seg.begin(), seg.end());
      mask_indptr.push_back(int64_t(mask.size()));
    }
  }

  // f(page, token in page, head, d) for every V element the batch holds.
  template <class F>
  void for_each_value(F&& f) {
    for (std::size_t r = 0; r < kv_len.size(); ++r)
      for (int32_t j = 0; j < kv_len[r]; ++j) {
        const int64_t page = pages.page_indices[std::size_t(pages.page_indptr[r] + j / c.page)];
        for (int32_t h = 0; h < c.kv_heads; ++h)
          for (int32_t d = 0; d < c.dv; ++d) f(page, j % c.page, h, d);
      }
  }

  AttentionParams params(bool csr, float* lse) {
    AttentionParams p;
    p.q = {q.data(), c.q, int64_t(c.qo_heads) * q_stride_head, q_stride_head};
    p.q_indptr = q_indptr.data();
    p.num_q_heads = c.qo_heads;
    p.cache = pool.view;
    p.pages = pages.table(csr);
    p.out = {out.data(), c.out, int64_t(c.qo_heads) * out_stride_head, out_stride_head};
    p.lse = c.lse ? lse : nullptr;
    p.scale = 1.f / std::sqrt(float(c.dq));
    p.causal = c.causal;
    p.window_left = c.window_left;
    p.window_right = c.window_right;
    p.softcap = c.softcap;
    p.alibi_slopes = c.alibi ? alibi.data() : nullptr;
    p.sinks = c.sinks ? sinks.data() : nullptr;
    if (c.mask != Case::Mask::none) {
      p.custom_mask = mask.data();
      p.mask_indptr = mask_indptr.data();
      p.mask_packed = c.mask == Case::Mask::packed;
    }
    return p;
  }

  AttentionPlan plan(int threads, int32_t kv_chunk) const {
    AttentionProblem pr = attention_problem(q_indptr, kv_len, c.qo_heads, c.kv_heads, c.dq, c.dv, threads);
    pr.kv_chunk = kv_chunk;
    return plan_attention(pr);
  }

  // Runs the kernel; returns the output bytes (for determinism checks) and fills lse.
  std::vector<uint8_t> run(const AttentionPlan& plan, bool csr, std::vector<float>& lse) {
    out.fill(kSentinel);
    lse.assign(std::size_t(total_q) * c.qo_heads, -7.f);
    Buffer ws(DType::f32, plan.workspace_bytes / 4 + 1);
    AttentionParams p = params(csr, lse.data());
    p.workspace = ws.data();
    p.workspace_bytes = plan.workspace_bytes;
    paged_attention(plan, p);
    const auto* b = static_cast<const uint8_t*>(out.data());
    return std::vector<uint8_t>(b, b + out.bytes());
  }

  // Error bound of the fp32 kernel, from the maths (u = fp32 unit roundoff):
  //   score error   e_s <= (dq + 8) u * scale * dq * |q|max |k|max  (dot product, worst case)
  //                        + 2 u * max |alibi term| + 4 u * |s|max   (ALiBi, softcap, scaling)
  //   weights p_j / Z then carry relative error <= 2 e_s + 4 u (exp is within 2 ulp), so the
  //   output moves by <= 2 (2 e_s + 4 u) |v|max, plus (kv_len + 8) u |v|max for each of the
  //   two running sums, and finally half an ulp of the output type.
  // A kernel that rounds P to bf16 for P.V (rounds_p) adds u_bf16 * sum_j p_j |v_j| (abs_ref).
  double tolerance(int32_t kv, double ref, bool rounds_p = false, double abs_ref = 0) const {
    const double u = unit_roundoff(DType::f32);
    const double scale = 1.0 / std::sqrt(double(c.dq));
    const double s_max = scale * c.dq * c.q_range;
    const double alibi_max = c.alibi ? double(kv) : 0.0;
    const double e_s = (c.dq + 8) * u * s_max + 2 * u * alibi_max + 4 * u * (s_max + alibi_max);
    const double p_rounding = rounds_p ? unit_roundoff(DType::bf16) * abs_ref : 0.0;
    return 2 * (2 * e_s + 4 * u) + 2 * (kv + 8) * u + unit_roundoff(c.out) * std::fabs(ref) + p_rounding + 1e-30;
  }

  // The bf16 dot-product kernel (bf16 q and KV) rounds P to bf16.
  static bool rounds_p(const std::string& kernel) { return kernel == "avx512_bf16_dot"; }

  void compare(const std::vector<float>& lse, const std::string& where, bool rounds_p = false) {
    for (std::size_t r = 0; r < kv_len.size(); ++r)
      for (int64_t t = q_indptr[r]; t < q_indptr[r + 1]; ++t)
        for (int32_t h = 0; h < c.qo_heads; ++h) {
          const std::size_t row = std::size_t(t) * c.qo_heads + h;
          for (int32_t d = 0; d < c.dv + 8; ++d) {
            const float got = out.get(std::size_t(t) * c.qo_heads * out_stride_head + h * out_stride_head + d);
            if (d >= c.dv) {
              ASSERT_EQ(got, float(Batch::sentinel(c.out))) << where << ": wrote past head_dim_v at token " << t;
              continue;
            }
            const double ref = ref_out[row * c.dv + d];
            ASSERT_NEAR(got, ref, tolerance(kv_len[r], ref, rounds_p, ref_abs_out[row * c.dv + d]))
                << where << ": request " << r << " token " << t << " head " << h << " dim " << d;
          }
          if (c.lse) {
            const double ref = ref_lse[row];
            if (std::isinf(ref)) {
              ASSERT_EQ(lse[row], float(ref)) << where << ": lse at token " << t << " head " << h;
            } else {
              ASSERT_NEAR(lse[row], ref, tolerance(kv_len[r], 0) + 4e-7 * std::fabs(ref))
                  << where << ": lse at token " << t << " head " << h;
            }
          } else {
            ASSERT_EQ(lse[row], -7.f) << where << ": lse written although not requested";
          }
        }
  }

  static float sentinel(DType t) {
    float f = kSentinel, g;
    uint16_t b;
    convert(&f, DType::f32, t == DType::f32 ? static_cast<void*>(&g) : &b, t, 1);
    if (t == DType::f32) return g;
    convert(&b, t, &g, DType::f32, 1);
    return g;
  }
};

class Attention : public ::testing::TestWithParam<Case> {};

TEST_P(Attention, MatchesReferenceOnEveryIsaAndTableForm) {
  const Case& c = GetParam();
  Batch b(c);
  const AttentionPlan plan = b.plan(c.threads, c.kv_chunk);
  testutil::for_each_kernel("attention", [&] { return attention_kernel_name(c.q, c.kv); }, [&](const std::string& name) {
    for (bool csr : {false, true}) {
      std::vector<float> lse;
      b.run(plan, csr, lse);
      b.compare(lse, name + (csr ? "/csr" : "/padded"), b.rounds_p(name));
      if (HasFatalFailure()) return;
    }
  });
}

// A fixed plan gives bitwise the same output on every run, whatever the thread scheduling.
TEST_P(Attention, FixedPlanIsBitwiseDeterministic) {
  const Case& c = GetParam();
  if (c.threads == 1) GTEST_SKIP() << "single-threaded case";
  Batch b(c);
  const AttentionPlan plan = b.plan(c.threads, c.kv_chunk);
  std::vector<float> lse1, lse2;
  const auto first = b.run(plan, false, lse1);
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(first, b.run(plan, false, lse2));
    ASSERT_EQ(0, std::memcmp(lse1.data(), lse2.data(), lse1.size() * sizeof(float)));
  }
}

// Two threads run one plan over one cache at once, each with its own workspace and outputs (the
// engine's pattern: layers of two micro-batches); each result is bitwise the sequential one.
// ThreadSanitizer runs this test (scripts/test.sh).
TEST_P(Attention, ConcurrentCallsShareAPlanAndCache) {
  const Case& c = GetParam();
  if (c.threads == 1) GTEST_SKIP() << "single-threaded case";
  Batch b(c);
  const AttentionPlan plan = b.plan(c.threads, c.kv_chunk);
  std::vector<float> lse_seq;
  const std::vector<uint8_t> sequential = b.run(plan, false, lse_seq);
  auto one = [&](Buffer& out, std::vector<float>& lse) {
    Buffer ws(DType::f32, plan.workspace_bytes / 4 + 1);
    AttentionParams p = b.params(false, lse.data());
    p.out.data = out.data();
    p.workspace = ws.data();
    p.workspace_bytes = plan.workspace_bytes;
    paged_attention(plan, p);
  };
  Buffer out_a(c.out, b.out.n), out_b(c.out, b.out.n);
  out_a.fill(Batch::kSentinel);
  out_b.fill(Batch::kSentinel);
  std::vector<float> lse_a(lse_seq.size(), -7.f), lse_b(lse_seq.size(), -7.f);
  std::thread ta([&] { one(out_a, lse_a); });
  std::thread tb([&] { one(out_b, lse_b); });
  ta.join();
  tb.join();
  for (const Buffer* o : {&out_a, &out_b})
    ASSERT_EQ(0, std::memcmp(o->data(), sequential.data(), sequential.size()));
  ASSERT_EQ(lse_a, lse_seq);
  ASSERT_EQ(lse_b, lse_seq);
}

std::vector<Case> cases() {
  std::vector<Case> v;
  auto add = [&](std::string name, auto&& edit) {
    Case c;
    c.name = std::move(name);
    edit(c);
    v.push_back(c);
  };
  add("base_mixed_batch", [](Case&) {});
  // dtypes of q / KV / out
  add("f32_f32_f32", [](Case& c) { c.q = c.kv = c.out = DType::f32; });
  add("f16_f16_f16", [](Case& c) { c.q = c.kv = c.out = DType::f16; });
  add("bf16q_f16kv_f32out", [](Case& c) { c.kv = DType::f16; c.out = DType::f32; });
  add("f32q_bf16kv_f16out", [](Case& c) { c.q = DType::f32; c.out = DType::f16; });
  add("f16q_f32kv_bf16out", [](Case& c) { c.q = DType::f16; c.kv = DType::f32; });
  // head dims, incl. ones that are not a multiple of 16 (vector tails) and MLA's 576 / 512
  for (int32_t d : {8, 32, 64, 72, 80, 96, 256, 512})
    add("head_dim_" + std::to_string(d), [d](Case& c) { c.dq = c.dv = d; });
  add("head_dim_576_512", [](Case& c) { c.dq = 576; c.dv = 512; c.qo_heads = 4; c.kv_heads = 1; });
  add("mla_latent_cache", [](Case& c) {  // DeepSeek: V inside K, one KV head, 16 q heads
    c.layout = Layout::latent;
    c.dq = 576;
    c.dv = 512;
    c.qo_heads = 16;
    c.kv_heads = 1;
    c.reqs = {{1, 37}, {1, 300}, {4, 40}, {17, 17}};
  });
  add("mla_latent_cache_f32_split", [](Case& c) {
    c.layout = Layout::latent;
    c.q = c.kv = c.out = DType::f32;
    c.dq = 576;
    c.dv = 512;
    c.qo_heads = 128;
    c.kv_heads = 1;
    c.page = 64;
    c.threads = 2;
    c.reqs = {{1, 700}, {2, 65}};
  });
  add("head_dim_qk64_v128", [](Case& c) { c.dq = 64; c.dv = 128; });
  // the decoder example's tiny model: long prompts split into several query tiles
  add("long_prompts_head_dim_32", [](Case& c) {
    c.qo_heads = 4;
    c.dq = c.dv = 32;
    c.reqs = {{40, 40}, {53, 53}, {1, 67}, {66, 66}};
  });
  // page sizes
  for (int32_t ps : {1, 7, 128}) add("page_" + std::to_string(ps), [ps](Case& c) { c.page = ps; });
  // GQA ratios 1, 4 (base), 8, MQA
  add("gqa_1", [](Case& c) { c.kv_heads = 8; });
  add("gqa_8", [](Case& c) { c.qo_heads = 16; c.kv_heads = 2; });
  add("mqa_8", [](Case& c) { c.kv_heads = 1; });
  add("mqa_32", [](Case& c) { c.qo_heads = 32; c.kv_heads = 1; c.dq = c.dv = 64; });
  // layouts
  add("layout_hnd", [](Case& c) { c.layout = Layout::hnd; });
  add("layout_combined_nhd", [](Case& c) { c.layout = Layout::combined_nhd; });
  add("layout_combined_hnd", [](Case& c) { c.layout = Layout::combined_hnd; c.page = 7; });
  // masks and logit options
  add("non_causal", [](Case& c) { c.causal = false; });
  add("non_causal_empty_kv", [](Case& c) { c.causal = false; c.reqs = {{2, 0}, {1, 9}, {0, 0}}; });
  add("non_causal_empty_kv_sinks", [](Case& c) { c.causal = false; c.sinks = true; c.reqs = {{2, 0}, {1, 9}}; });
  add("window_left_8", [](Case& c) { c.window_left = 8; });
  add("window_left_0", [](Case& c) { c.window_left = 0; });
  add("non_causal_window_5_3", [](Case& c) { c.causal = false; c.window_left = 5; c.window_right = 3; });
  add("softcap", [](Case& c) { c.softcap = 5.f; c.q_range = 4.f; });
  add("softcap_with_window", [](Case& c) { c.softcap = 5.f; c.q_range = 4.f; c.window_left = 20; });
  add("alibi", [](Case& c) { c.alibi = true; });
  add("sinks", [](Case& c) { c.sinks = true; });
  add("alibi_sinks_window", [](Case& c) { c.alibi = true; c.sinks = true; c.window_left = 16; });
  add("everything", [](Case& c) {
    c.alibi = c.sinks = true;
    c.softcap = 10.f;
    c.q_range = 3.f;
    c.window_left = 24;
    c.layout = Layout::hnd;
    c.page = 7;
    c.kv = DType::f16;
    c.threads = 2;
    c.kv_chunk = 32;
  });
  // custom masks (random; the tree shapes are in test_attention_tree.cpp)
  add("mask_packed", [](Case& c) { c.mask = Case::Mask::packed; });
  add("mask_dense_non_causal", [](Case& c) { c.mask = Case::Mask::dense; c.causal = false; });
  add("mask_f32_window_sinks", [](Case& c) {
    c.mask = Case::Mask::packed;
    c.q = c.kv = c.out = DType::f32;
    c.window_left = 30;
    c.sinks = true;
  });
  add("mask_split_threads_2", [](Case& c) {
    c.mask = Case::Mask::packed;
    c.threads = 2;
    c.kv_chunk = 32;
    c.reqs = {{1, 200}, {9, 90}, {5, 0}, {33, 33}};
    c.causal = false;
  });
  add("no_lse", [](Case& c) { c.lse = false; });
  add("sharp_softmax", [](Case& c) { c.q_range = 8.f; });
  // lengths: long decode, prefill only, zero-length query, one huge request
  add("long_decode", [](Case& c) { c.reqs = {{1, 3001}, {1, 1500}}; });
  add("prefill_only", [](Case& c) { c.reqs = {{64, 64}, {33, 33}}; });
  add("chunked_prefill", [](Case& c) { c.reqs = {{40, 300}, {17, 77}}; });
  add("empty_query_requests", [](Case& c) { c.reqs = {{0, 10}, {0, 0}, {1, 4}}; });
  // threads and split-KV
  add("threads_2_no_split", [](Case& c) { c.threads = 2; c.kv_chunk = -1; });
  add("threads_2_split_32", [](Case& c) { c.threads = 2; c.kv_chunk = 32; });
  add("threads_2_split_auto", [](Case& c) { c.threads = 2; c.reqs = {{1, 2100}}; c.kv_heads = 1; });
  add("split_prefill_causal", [](Case& c) { c.threads = 2; c.kv_chunk = 64; c.reqs = {{40, 300}}; });
  add("split_window_sinks", [](Case& c) {
    c.threads = 2;
    c.kv_chunk = 32;
    c.window_left = 40;
    c.sinks = true;
    c.reqs = {{1, 200}, {3, 90}};
  });
  return v;
}

INSTANTIATE_TEST_SUITE_P(Cases, Attention, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// The vendor's fetch choice (src/attention/dispatch.cpp); ctest runs this under each vendor.
TEST(AttentionFetch, FollowsTheVendor) {
  const std::string vendor = tuning_vendor();
  EXPECT_STREQ(attention_kv_fetch_name(), vendor == "amd" ? "rows_and_streams" : "rows") << vendor;
}

TEST(AttentionPlan, SplitsOnlyWhenThreadsWouldIdle) {
  std::vector<int32_t> indptr{0, 1}, kv{32768};
  AttentionProblem pr = attention_problem(indptr, kv, 8, 1, 128, 128, 4);
  const AttentionPlan split = plan_attention(pr);
  EXPECT_GT(split.kv_chunk, 0);
  EXPECT_GE(split.items.size(), 4u * 4u);
  EXPECT_EQ(split.merges.size(), 1u);
  pr.num_threads = 1;
  EXPECT_EQ(plan_attention(pr).kv_chunk, 0);
  pr.num_threads = 4;
  pr.kv_chunk = -1;
  EXPECT_EQ(plan_attention(pr).items.size(), 1u);
}

}  // namespace
