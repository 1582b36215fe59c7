// Custom masks as speculative decoding uses them: a draft tree (EAGLE / Medusa) or a Jacobi
// block verified in one call. Each draft token must get exactly the attention it would get as
// a plain decode step over the prefix and its own branch, so the masked call is checked against
// those decode calls (an independent route: no mask, other pages, other tiling), on every
// kernel, and against the reference.
#include <gtest/gtest.h>

#include "test_util.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

constexpr int32_t kQoHeads = 8, kKvHeads = 2, kDim = 64;

// A draft tree: parent[i] < i, or -1 for a node that hangs off the prefix (the tree's roots).
using Tree = std::vector<int32_t>;

// Medusa's layout: heads of top-k candidates, each choice a path of candidate indices.
Tree medusa_tree(const std::vector<std::vector<int32_t>>& choices) {
  Tree parent{-1};  // node 0: the last accepted token, as Medusa verifies it with the drafts
  std::vector<std::vector<int32_t>> path_of{{}};
  for (const auto& c : choices) {
    const std::vector<int32_t> up(c.begin(), c.end() - 1);
    const auto it = std::find(path_of.begin(), path_of.end(), up);
    parent.push_back(int32_t(it - path_of.begin()));
    path_of.push_back(c);
  }
  return parent;
}

// EAGLE's dynamic tree: each level expands the best few nodes of the one before.
Tree eagle_tree(int32_t depth, int32_t expand, int32_t top_k, std::mt19937& rng) {
  Tree parent;
  std::vector<int32_t> level{-1};
  for (int32_t d = 0; d < depth; ++d) {
    std::vector<int32_t> next;
    for (int32_t i = 0; i < std::min<int32_t>(expand, int32_t(level.size())); ++i) {
      const int32_t from = level[std::size_t(rng() % level.size())];
      for (int32_t k = 0; k < top_k; ++k) {
        next.push_back(int32_t(parent.size()));
        parent.push_back(from);
      }
    }
    level = next;
  }
  return parent;
}

// Jacobi decoding: n consecutive guesses, each seeing the ones before it (a chain).
Tree chain(int32_t n) {
  Tree parent;
  for (int32_t i = 0; i < n; ++i) parent.push_back(i - 1);
  return parent;
}

// Node i's branch, root first, ending with i.
std::vector<int32_t> branch(const Tree& t, int32_t i) {
  std::vector<int32_t> b;
  for (; i >= 0; i = t[std::size_t(i)]) b.insert(b.begin(), i);
  return b;
}

// Requests of `prefix[r]` accepted tokens followed by the draft tree trees[r], checked on every
// kernel against per-branch decode calls and against the reference.
void check_trees(const std::vector<Tree>& trees, const std::vector<int32_t>& prefix, DType dtype, int threads) {
  std::mt19937 rng(uint32_t(trees.size() * 131 + prefix[0]));
  std::vector<int32_t> q_indptr{0}, kv_len;
  std::vector<uint8_t> mask;
  std::vector<int64_t> mask_indptr{0};
  // The branch requests: one decode step per draft node over prefix + branch.
  std::vector<int32_t> b_indptr{0}, b_len;
  for (std::size_t r = 0; r < trees.size(); ++r) {
    const int32_t n = int32_t(trees[r].size()), kv = prefix[r] + n;
    q_indptr.push_back(q_indptr.back() + n);
    kv_len.push_back(kv);
    std::vector<uint8_t> seg(std::size_t((int64_t(n) * kv + 7) / 8), 0);
    for (int32_t i = 0; i < n; ++i) {
      std::vector<int32_t> keys(static_cast<std::size_t>(prefix[r]));
      std::iota(keys.begin(), keys.end(), 0);
      for (int32_t node : branch(trees[r], i)) keys.push_back(prefix[r] + node);
      for (int32_t j : keys) seg[std::size_t((int64_t(i) * kv + j) / 8)] |= uint8_t(1u << ((int64_t(i) * kv + j) % 8));
      b_indptr.push_back(b_indptr.back() + 1);
      b_len.push_back(int32_t(keys.size()));
    }
    mask.insert(mask.end(), seg.begin(), seg.end());
    mask_indptr.push_back(int64_t(mask.size()));
  }
  const int32_t page = 16;
  Pages pages(kv_len, page, Pages::pages_needed(kv_len, page) + 3, rng);
  Pages b_pages(b_len, page, Pages::pages_needed(b_len, page), rng);
  Pool pool(Layout::nhd, dtype, Pages::pages_needed(kv_len, page) + 3, page, kKvHeads, kDim, kDim);
  Pool b_pool(Layout::hnd, dtype, Pages::pages_needed(b_len, page), page, kKvHeads, kDim, kDim);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const auto slot = [&](const Pages& p, std::size_t r, int32_t j) {
    return int64_t(p.page_indices[std::size_t(p.page_indptr[r] + j / page)]);
  };
  for (std::size_t r = 0, b = 0; r < trees.size(); ++r) {
    for (int32_t j = 0; j < kv_len[r]; ++j)
      for (int which : {0, 1})
        for (int32_t h = 0; h < kKvHeads; ++h)
          for (int32_t d = 0; d < kDim; ++d) pool.set(which, slot(pages, r, j), j % page, h, d, u(rng));
    for (int32_t i = 0; i < int32_t(trees[r].size()); ++i, ++b) {  // copy prefix + branch
      std::vector<int32_t> keys(static_cast<std::size_t>(prefix[r]));
      std::iota(keys.begin(), keys.end(), 0);
      for (int32_t node : branch(trees[r], i)) keys.push_back(prefix[r] + node);
      for (int32_t j = 0; j < int32_t(keys.size()); ++j)
        for (int which : {0, 1})
          for (int32_t h = 0; h < kKvHeads; ++h)
            for (int32_t d = 0; d < kDim; ++d)
              b_pool.set(which, slot(b_pages, b, j), j % page, h, d,
                         pool.at(which, slot(pages, r, keys[std::size_t(j)]), keys[std::size_t(j)] % page, h, d));
    }
  }
  const int64_t tokens = q_indptr.back();
  Buffer q(dtype, std::size_t(tokens) * kQoHeads * kDim), out(DType::f32, q.n), b_out(DType::f32, q.n), ref(DType::f32, q.n);
  q.fill_uniform(rng, -2.f, 2.f);  // sharp enough that one wrong key moves the output
  std::vector<float> lse(std::size_t(tokens) * kQoHeads), b_lse(lse.size()), ref_lse(lse.size());
  const auto run = [&](const std::vector<int32_t>& qi, const std::vector<int32_t>& kl, const Pages& pg, const Pool& pl,
                       Buffer& o, std::vector<float>& l, bool masked, bool reference) {
    const AttentionPlan plan = plan_attention(attention_problem(qi, kl, kQoHeads, kKvHeads, kDim, kDim, threads));
    Buffer ws(DType::f32, plan.workspace_bytes / 4 + 1);
    AttentionParams p;
    p.q = {q.data(), dtype, kQoHeads * kDim, kDim};
    p.q_indptr = qi.data();
    p.num_q_heads = kQoHeads;
    p.cache = pl.view;
    p.pages = pg.table(true);
    p.out = {o.data(), DType::f32, kQoHeads * kDim, kDim};
    p.lse = l.data();
    p.scale = 1.f / std::sqrt(float(kDim));
    if (masked) p.custom_mask = mask.data(), p.mask_indptr = mask_indptr.data();
    p.workspace = ws.data();
    p.workspace_bytes = plan.workspace_bytes;
    if (reference) reference::paged_attention(p);
    else paged_attention(plan, p);
  };
  run(q_indptr, kv_len, pages, pool, ref, ref_lse, true, true);
  // Same math, other order of the keys: rounding of the fp32 sums only (bf16 rounds P).
  const double tol = dtype == DType::bf16 ? 8e-3 : 2e-5;
  for_each_kernel("attention", [&] { return attention_kernel_name(dtype, dtype); }, [&](const std::string& name) {
    run(q_indptr, kv_len, pages, pool, out, lse, true, false);
    run(b_indptr, b_len, b_pages, b_pool, b_out, b_lse, false, false);
    for (std::size_t i = 0; i < q.n; ++i) {
      ASSERT_NEAR(out.get(i), b_out.get(i), tol) << name << ": token " << i / (kQoHeads * kDim) << " against its branch";
      ASSERT_NEAR(out.get(i), ref.get(i), tol) << name << ": token " << i / (kQoHeads * kDim) << " against the reference";
    }
    for (std::size_t i = 0; i < lse.size(); ++i) ASSERT_NEAR(lse[i], b_lse[i], 1e-4) << name << ": lse row " << i;
  });
}

TEST(AttentionTree, MedusaTreeEqualsItsBranches) {
  const Tree t = medusa_tree({{0}, {1}, {2}, {0, 0}, {0, 1}, {0, 2}, {1, 0}, {1, 1}, {2, 0}, {0, 0, 0}, {0, 0, 1},
                              {0, 1, 0}, {1, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 1}, {0, 0, 0, 0, 0}});
  ASSERT_EQ(t.size(), 17u);
  for (DType d : {DType::f32, DType::f16, DType::bf16}) check_trees({t, t}, {37, 5}, d, 1);
}

TEST(AttentionTree, EagleTreesInARaggedBatch) {
  std::mt19937 rng(11);
  const std::vector<Tree> trees{eagle_tree(6, 4, 4, rng), eagle_tree(3, 2, 8, rng), eagle_tree(1, 1, 10, rng)};
  for (DType d : {DType::f32, DType::bf16}) check_trees(trees, {200, 1, 64}, d, 1);
  check_trees(trees, {500, 33, 0}, DType::f32, 2);  // split KV on two threads
}

TEST(AttentionTree, JacobiBlockEqualsCausalSteps) {
  for (DType d : {DType::f32, DType::bf16}) check_trees({chain(16), chain(7), chain(1)}, {90, 0, 31}, d, 2);
}

}  // namespace
