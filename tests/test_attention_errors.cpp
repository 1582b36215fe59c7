// Bad input to plan_attention / paged_attention gets a pagedinfer::Error naming the argument,
// before anything is read (run under AddressSanitizer in CI).
#include <gtest/gtest.h>

#include "test_util.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

// A small valid decode + prefill batch that each test breaks in one way.
// paged_attention with the workspace fields set.
void run_with(const AttentionPlan& plan, AttentionParams params, void* ws, std::size_t bytes) {
  params.workspace = ws;
  params.workspace_bytes = bytes;
  paged_attention(plan, params);
}

struct Valid {
  std::mt19937 rng{3};
  std::vector<int32_t> q_indptr{0, 1, 4}, kv_len{20, 3};
  Pages pages{kv_len, 16, 8, rng};
  Pool pool{Layout::nhd, DType::bf16, 8, 16, 2, 64, 64};
  Buffer q{DType::bf16, 4 * 8 * 64}, out{DType::bf16, 4 * 8 * 64};
  std::vector<float> lse = std::vector<float>(4 * 8);
  AttentionProblem problem;
  AttentionParams params;

  Valid() {
    pool.k.fill(0.5f);
    pool.v.fill(0.25f);
    q.fill(1.f);
    problem = attention_problem(q_indptr, kv_len, 8, 2, 64, 64);
    params.q = {q.data(), DType::bf16, 8 * 64, 64};
    params.q_indptr = q_indptr.data();
    params.num_q_heads = 8;
    params.cache = pool.view;
    params.pages = pages.table(false);
    params.out = {out.data(), DType::bf16, 8 * 64, 64};
    params.lse = lse.data();
    params.scale = 0.125f;
  }

  void run(std::size_t ws_extra = 0) {
    const AttentionPlan plan = plan_attention(problem);
    Buffer ws(DType::f32, plan.workspace_bytes / 4 + 16);
    run_with(plan, params, ws.data(), plan.workspace_bytes + ws_extra);
  }
};

TEST(AttentionErrors, ValidBatchRuns) {
  Valid v;
  EXPECT_NO_THROW(v.run());
  EXPECT_NO_THROW(reference::paged_attention(v.params));
}

TEST(AttentionErrors, BlockIdOutsidePool) {
  Valid v;
  v.pages.block_table[1] = 8;  // request 0, second page
  v.params.pages = v.pages.table(false);
  expect_error([&] { v.run(); }, {"page_table.block_table[0][1]: page id 8", "request 0", "outside the pool"});
  expect_error([&] { reference::paged_attention(v.params); }, {"reference::paged_attention", "page id 8"});
  Valid w;
  w.pages.page_indices[0] = -1;
  w.params.pages = w.pages.table(true);
  expect_error([&] { w.run(); }, {"page_table.page_indices[0]: page id -1"});
}

// Trust issue, finding 1: a decreasing page_indptr was read through before it was checked, so
// page_indices (sized by page_indptr[num_reqs]) was read out of bounds. ASan runs this too.
TEST(AttentionErrors, CsrIndptrIsCheckedBeforeItsIndices) {
  Valid v;
  std::vector<int32_t> indptr = {0, 2, 1};
  std::vector<int32_t> indices(1, 0);  // page_indptr[2] entries
  PageTable t;
  t.num_reqs = 2;
  t.kv_len = v.kv_len.data();
  t.page_indptr = indptr.data();
  t.page_indices = indices.data();
  v.params.pages = t;
  expect_error([&] { reference::paged_attention(v.params); },
               {"page_indptr must be non-decreasing", "page_indptr[2] = 1 < page_indptr[1] = 2"});
}

TEST(AttentionErrors, KvLenBeyondTheTablesPages) {
  Valid v;
  v.params.pages.block_table_cols = 1;  // request 0 needs 2 pages of 16 for 20 tokens
  expect_error([&] { v.run(); }, {"kv_len[0] = 20", "needs 2 pages"});
  Valid w;
  w.params.pages = w.pages.table(true);
  w.pages.page_indptr[1] = 1;
  expect_error([&] { w.run(); }, {"kv_len[0] = 20", "has 1 pages"});
}

TEST(AttentionErrors, QueryLongerThanKvInCausalMode) {
  Valid v;
  v.kv_len[1] = v.pages.kv_len[1] = 2;  // 3 query tokens, 2 KV tokens
  expect_error([&] { v.run(); }, {"request 1", "q_len = 3 > kv_len = 2", "causal"});
  v.params.causal = false;
  EXPECT_NO_THROW(v.run());
}

TEST(AttentionErrors, HeadsNotDivisibleForGqa) {
  Valid v;
  v.problem.num_q_heads = 7;
  expect_error([&] { v.run(); }, {"plan_attention", "num_q_heads = 7", "multiple of num_kv_heads = 2"});
  Valid w;
  w.params.num_q_heads = 7;
  expect_error([&] { reference::paged_attention(w.params); }, {"num_q_heads = 7"});
}

TEST(AttentionErrors, UnsupportedHeadDimOrDtype) {
  Valid v;
  v.problem.head_dim_qk = 60;
  expect_error([&] { v.run(); }, {"head dim 60", "multiple of 8"});
  Valid w;
  w.params.cache.k.head_dim = 1032;
  expect_error([&] { reference::paged_attention(w.params); }, {"cache.k.head_dim = 1032"});
  // Against a plan, params of another shape are named as such before their own rules.
  expect_error([&] { w.run(); }, {"head dims (1032, 64) differ from the plan's (64, 64)"});
  // Trust issue, finding 8: a num_q_heads other than the plan's was reported as overlapping q strides.
  Valid h;
  h.params.num_q_heads = 16;
  expect_error([&] { h.run(); }, {"heads (16 query, 2 KV) differ from the plan's (8, 2)"});
  Valid x;
  x.params.cache.dtype = static_cast<DType>(9);
  expect_error([&] { x.run(); }, {"cache.dtype"});
  Valid y;
  y.params.q.dtype = static_cast<DType>(-1);
  expect_error([&] { y.run(); }, {"q.dtype"});
  Valid z;
  z.params.out.dtype = static_cast<DType>(3);
  expect_error([&] { z.run(); }, {"out.dtype"});
}

TEST(AttentionErrors, NullOrMisalignedPointers) {
  Valid a;
  a.params.q.data = nullptr;
  expect_error([&] { a.run(); }, {"q.data must not be null"});
  Valid b;
  b.params.out.data = static_cast<char*>(b.out.data()) + 1;
  expect_error([&] { b.run(); }, {"out.data must be aligned to 2 bytes"});
  Valid c;
  c.params.cache.k.data = nullptr;
  expect_error([&] { c.run(); }, {"cache.k.data must not be null"});
  Valid d;
  d.params.cache.v.data = static_cast<char*>(d.pool.v.data()) + 1;
  expect_error([&] { d.run(); }, {"cache.v.data must be aligned"});
  Valid e;
  e.params.q_indptr = nullptr;
  expect_error([&] { e.run(); }, {"q_indptr must not be null"});
  Valid f;
  f.params.pages.kv_len = nullptr;
  expect_error([&] { f.run(); }, {"kv_len must not be null"});
  Valid g;
  g.params.pages.block_table = nullptr;
  expect_error([&] { g.run(); }, {"exactly one form"});
  Valid h;
  h.params.lse = reinterpret_cast<float*>(reinterpret_cast<char*>(h.lse.data()) + 2);
  expect_error([&] { h.run(); }, {"lse must be 4-byte aligned"});
}

TEST(AttentionErrors, NegativeLengthsAndBadIndptr) {
  Valid a;
  a.kv_len[0] = -1;
  expect_error([&] { a.run(); }, {"kv_len[0] = -1", "must be in [0, 2^30]"});
  Valid b;
  b.q_indptr[2] = 0;
  expect_error([&] { b.run(); }, {"q_indptr", "non-decreasing"});
  Valid c;
  c.q_indptr[0] = 1;
  expect_error([&] { c.run(); }, {"q_indptr[0] = 1"});
  Valid d;
  d.problem.num_reqs = -2;
  expect_error([&] { d.run(); }, {"num_reqs = -2"});
  Valid e;
  e.params.window_left = -3;
  expect_error([&] { e.run(); }, {"window_left = -3"});
  Valid f;
  f.params.softcap = -1.f;
  expect_error([&] { f.run(); }, {"softcap = -1"});
  Valid g;
  g.params.scale = std::numeric_limits<float>::infinity();
  expect_error([&] { g.run(); }, {"scale", "finite"});
}

TEST(AttentionErrors, StridesThatOverlapOrAreNotPositive) {
  Valid a;
  a.params.q.stride_head = 32;  // rows of 64 elements overlap
  expect_error([&] { a.run(); }, {"q strides", "overlap"});
  Valid b;
  b.params.cache.k.stride_token = 0;
  expect_error([&] { b.run(); }, {"cache.k strides must be positive"});
  Valid c;
  c.params.cache.v.stride_page = 64;
  expect_error([&] { c.run(); }, {"cache.v strides", "overlap"});
  Valid d;
  d.params.cache.page_size = 0;
  expect_error([&] { d.run(); }, {"cache.page_size = 0"});
}

TEST(AttentionErrors, ParamsThatDoNotMatchThePlan) {
  Valid v;
  const AttentionPlan plan = plan_attention(v.problem);
  Buffer ws(DType::f32, plan.workspace_bytes / 4 + 16);
  v.pages.kv_len[0] = 17;  // the params' table, not the one the plan saw
  expect_error([&] { run_with(plan, v.params, ws.data(), plan.workspace_bytes); },
               {"pages.kv_len[0] = 17", "plan's 20", "re-plan"});
  v.pages.kv_len[0] = 20;
  expect_error([&] { run_with(plan, v.params, ws.data(), plan.workspace_bytes - 1); },
               {"workspace_bytes", "smaller than plan.workspace_bytes"});
  expect_error([&] { run_with(plan, v.params, static_cast<char*>(ws.data()) + 4, plan.workspace_bytes); },
               {"workspace must be 64-byte aligned"});
  AttentionProblem mqa = v.problem;
  mqa.num_kv_heads = 1;
  const AttentionPlan other = plan_attention(mqa);
  Buffer ws2(DType::f32, other.workspace_bytes / 4 + 16);
  expect_error([&] { run_with(other, v.params, ws2.data(), other.workspace_bytes); }, {"differ from the plan"});
  expect_error([&] { run_with(AttentionPlan{}, Valid().params, nullptr, 0); }, {"plan was not made"});
}

// Trust issue, findings 3 and 6: sums near INT32_MAX, strides near 2^62 and huge thread counts
// were accepted (signed overflow, or a 9.5 GB workspace request).
TEST(AttentionErrors, SizesThatWouldOverflowAreRefused) {
  std::vector<int32_t> qi = {0, 3, INT32_MAX}, kl = {20, INT32_MAX};
  expect_error([&] { plan_attention(attention_problem(qi, kl, 8, 2, 64, 64)); }, {"exceed 2^30"});
  std::vector<int32_t> qi2 = {0, 1}, kl2 = {1 << 30};
  AttentionProblem tiny_chunks = attention_problem(qi2, kl2, 8, 2, 64, 64);
  tiny_chunks.kv_chunk = 1;
  tiny_chunks.num_threads = 2;
  expect_error([&] { plan_attention(tiny_chunks); }, {"work items", "kv_chunk = 1"});
  Valid v;
  v.problem.num_threads = 1 << 20;
  expect_error([&] { v.run(); }, {"num_threads = 1048576", "[1, 1024]"});
  Valid s;
  s.params.q.stride_token = int64_t(1) << 62;
  expect_error([&] { reference::paged_attention(s.params); }, {"q strides", "exceed the address space"});
  MergeStatesParams m;
  m.num_tokens = int64_t(1) << 60;
  m.num_heads = 2;
  m.head_dim = 8;
  std::vector<float> lse(4), buf(64);
  m.lse_a = m.lse_b = lse.data();
  m.a = m.b = {buf.data(), DType::f32, 16, 8};
  m.out = {buf.data() + 32, DType::f32, 16, 8};
  expect_error([&] { merge_states(m); }, {"merge_states", "a strides", "exceed the address space"});
}

TEST(AttentionErrors, NumThreadsAndKvChunk) {
  Valid v;
  v.problem.num_threads = 0;
  expect_error([&] { v.run(); }, {"num_threads = 0"});
  v.problem.num_threads = 1;
  v.problem.kv_chunk = -5;
  expect_error([&] { v.run(); }, {"kv_chunk = -5"});
}


}  // namespace

namespace {

TEST(AttentionErrors, CustomMaskSegmentsMustFitTheirRequests) {
  Valid v;  // q_len x kv_len: 1 x 20 and 3 x 3 = 3 and 2 bytes packed, 20 and 9 dense
  std::vector<uint8_t> mask(29, 0xff);
  std::vector<int64_t> indptr{0, 3, 5};
  v.params.custom_mask = mask.data();
  v.params.mask_indptr = indptr.data();
  EXPECT_NO_THROW(v.run());
  v.params.mask_packed = false;
  expect_error([&] { v.run(); }, {"mask_indptr: request 0's segment has 3 bytes", "20 elements need 20"});
  indptr = {0, 20, 29};
  EXPECT_NO_THROW(v.run());
  indptr = {0, 20, 28};
  expect_error([&] { reference::paged_attention(v.params); }, {"reference::paged_attention", "request 1's segment has 8 bytes"});
  indptr = {1, 21, 30};
  expect_error([&] { v.run(); }, {"mask_indptr[0] = 1 must be 0"});
  v.params.mask_indptr = nullptr;
  expect_error([&] { v.run(); }, {"custom_mask and mask_indptr must be given together"});
  v.params.custom_mask = nullptr;
  v.params.mask_indptr = indptr.data();
  expect_error([&] { v.run(); }, {"custom_mask and mask_indptr must be given together"});
}

}  // namespace
