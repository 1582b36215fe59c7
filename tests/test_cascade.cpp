// Cascade attention against the reference over each request's whole KV copied into plain pages:
// groups sharing prefixes of any length (not page multiples), groups of one, empty prefixes,
// decode and multi-token suffixes, fp32 and bf16, on every kernel, one and two threads.
#include <gtest/gtest.h>

#include "test_util.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

constexpr int32_t kQoHeads = 8, kKvHeads = 2, kDim = 64, kPage = 16;

struct Request {
  int32_t q_len, suffix;
};

// groups[g] = {prefix length, its requests}.
void check_cascade(const std::vector<std::pair<int32_t, std::vector<Request>>>& groups, DType dtype, int threads) {
  std::mt19937 rng(uint32_t(groups.size() * 7 + threads));
  std::vector<int32_t> group_indptr{0}, prefix, q_indptr{0}, suffix, flat_len;
  for (const auto& [pre, reqs] : groups) {
    prefix.push_back(pre);
    for (const Request& r : reqs) {
      q_indptr.push_back(q_indptr.back() + r.q_len);
      suffix.push_back(r.suffix);
      flat_len.push_back(pre + r.suffix);
    }
    group_indptr.push_back(int32_t(suffix.size()));
  }
  // One pool holds the prefixes (pages per group), the suffixes (pages per request) and, for the
  // reference, every request's whole KV again in its own pages.
  const int64_t np_shared = Pages::pages_needed(prefix, kPage), np_unique = Pages::pages_needed(suffix, kPage);
  const int64_t pages = np_shared + np_unique + Pages::pages_needed(flat_len, kPage);
  Pages shared(prefix, kPage, np_shared, rng), unique(suffix, kPage, np_unique, rng),
      flat(flat_len, kPage, Pages::pages_needed(flat_len, kPage), rng);
  std::vector<int32_t> perm(static_cast<std::size_t>(pages));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  // Each table's ids (0 .. its page count) become disjoint shuffled ids of the one pool.
  const auto place = [&](Pages& t, int64_t first) {
    for (auto& id : t.page_indices) id = perm[std::size_t(first + id)];
    for (auto& id : t.block_table)
      if (id >= 0) id = perm[std::size_t(first + id)];
  };
  place(shared, 0);
  place(unique, np_shared);
  place(flat, np_shared + np_unique);
  Pool pool(Layout::hnd, dtype, pages, kPage, kKvHeads, kDim, kDim);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const auto page_of = [](const Pages& t, std::size_t r, int32_t j) {
    return int64_t(t.page_indices[std::size_t(t.page_indptr[r] + j / kPage)]);
  };
  for (std::size_t g = 0, r = 0; g < groups.size(); ++g)
    for (std::size_t k = 0; k < groups[g].second.size(); ++k, ++r)
      for (int32_t j = 0; j < flat_len[r]; ++j)
        for (int which : {0, 1})
          for (int32_t h = 0; h < kKvHeads; ++h)
            for (int32_t d = 0; d < kDim; ++d) {
              const bool in_prefix = j < prefix[g];
              if (in_prefix && k == 0) pool.set(which, page_of(shared, g, j), j % kPage, h, d, u(rng));
              if (!in_prefix) {
                const int32_t s = j - prefix[g];
                pool.set(which, page_of(unique, r, s), s % kPage, h, d, u(rng));
              }
              const float v = in_prefix ? pool.at(which, page_of(shared, g, j), j % kPage, h, d)
                                        : pool.at(which, page_of(unique, r, j - prefix[g]), (j - prefix[g]) % kPage, h, d);
              pool.set(which, page_of(flat, r, j), j % kPage, h, d, v);
            }
  const int64_t tokens = q_indptr.back();
  Buffer q(dtype, std::size_t(tokens) * kQoHeads * kDim), out(DType::f32, q.n), ref(DType::f32, q.n);
  q.fill_uniform(rng, -2.f, 2.f);
  std::vector<float> lse(std::size_t(tokens) * kQoHeads), ref_lse(lse.size());
  AttentionParams rp;
  rp.q = {q.data(), dtype, kQoHeads * kDim, kDim};
  rp.q_indptr = q_indptr.data();
  rp.num_q_heads = kQoHeads;
  rp.cache = pool.view;
  rp.pages = flat.table(true);
  rp.out = {ref.data(), DType::f32, kQoHeads * kDim, kDim};
  rp.lse = ref_lse.data();
  rp.scale = 1.f / std::sqrt(float(kDim));
  reference::paged_attention(rp);

  CascadeProblem pr{int32_t(groups.size()), group_indptr.data(), prefix.data(), int32_t(suffix.size()),
                    q_indptr.data(), suffix.data(), kQoHeads, kKvHeads, kDim, kDim, threads};
  const CascadePlan plan = plan_cascade(pr);
  Buffer ws(DType::f32, plan.workspace_bytes / 4 + 16);
  CascadeParams p;
  p.q = rp.q;
  p.cache = pool.view;
  p.shared_pages = shared.table(false);
  p.unique_pages = unique.table(true);
  p.out = {out.data(), DType::f32, kQoHeads * kDim, kDim};
  p.lse = lse.data();
  p.scale = rp.scale;
  p.workspace = ws.data();
  p.workspace_bytes = plan.workspace_bytes;
  // Same math, other order (a split of the KV, and bf16 P for the bf16 dot kernel).
  const double tol = dtype == DType::bf16 ? 8e-3 : 2e-5;
  for_each_kernel("attention", [&] { return attention_kernel_name(dtype, dtype); }, [&](const std::string& name) {
    cascade_attention(plan, p);
    for (std::size_t i = 0; i < out.n; ++i)
      ASSERT_NEAR(out.get(i), ref.get(i), tol) << name << ": token " << i / (kQoHeads * kDim);
    for (std::size_t i = 0; i < lse.size(); ++i) ASSERT_NEAR(lse[i], ref_lse[i], 1e-4 * (1 + std::fabs(ref_lse[i]))) << name;
  });
}

TEST(Cascade, SharedPrefixesEqualFlatAttention) {
  const std::vector<std::pair<int32_t, std::vector<Request>>> groups = {
      {100, {{1, 5}, {1, 1}, {3, 20}, {1, 33}}},  // a system prompt shared by four decodes / a chunk
      {37, {{2, 2}}},                             // a group of one
      {0, {{1, 9}, {4, 4}}},                      // no shared prefix
      {64, {{1, 1}, {1, 17}, {0, 3}}},            // a page multiple; a request with no query
  };
  for (DType d : {DType::f32, DType::bf16})
    for (int threads : {1, 2}) check_cascade(groups, d, threads);
}

TEST(Cascade, ErrorsNameTheArgument) {
  std::vector<int32_t> gi{0, 2}, pre{10}, qi{0, 1, 2}, suf{1, 1};
  CascadeProblem pr{1, gi.data(), pre.data(), 2, qi.data(), suf.data(), 8, 2, 64, 64, 1};
  EXPECT_NO_THROW(plan_cascade(pr));
  gi[1] = 1;
  expect_error([&] { plan_cascade(pr); }, {"plan_cascade", "group_indptr must run from 0 to num_reqs = 2"});
  gi[1] = 2;
  suf[1] = 0;
  expect_error([&] { plan_cascade(pr); }, {"request 1 has q_len = 1 > suffix_len = 0"});
  suf[1] = 1;
  pre[0] = -1;
  expect_error([&] { plan_cascade(pr); }, {"prefix_len[0] = -1"});
}

}  // namespace
