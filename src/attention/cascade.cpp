// Cascade attention: the shared-prefix level, the per-request level, and their merge
// (cascade.hpp), each an existing op over views of one workspace.
#include "pagedinfer/cascade.hpp"

#include <algorithm>

#include "common/check.hpp"

namespace pagedinfer {

namespace {

std::size_t align64(std::size_t n) { return (n + 63) / 64 * 64; }

constexpr int32_t kSharedRows = 256;  // query rows (tokens x GQA group) per shared-level item

// Where the workspace holds what: one level's attention workspace (the levels run one after the
// other), then each level's fp32 output and lse.
struct CascadeLayout {
  std::size_t level_bytes, out_bytes, lse_bytes, total;
  CascadeLayout(const CascadePlan& plan)
      : level_bytes(align64(std::max(plan.shared.workspace_bytes, plan.unique.workspace_bytes))) {
    const AttentionProblem& pr = plan.unique.problem;
    const std::size_t rows = std::size_t(plan.unique.q_indptr.back()) * std::size_t(pr.num_q_heads);
    out_bytes = align64(rows * std::size_t(pr.head_dim_v) * sizeof(float));
    lse_bytes = align64(rows * sizeof(float));
    total = level_bytes + 2 * (out_bytes + lse_bytes);
  }
};

}  // namespace

CascadePlan plan_cascade(const CascadeProblem& c) {
  const char* where = "plan_cascade";
  PAGEDINFER_CHECK(c.num_groups >= 0 && c.num_reqs >= 0, where, "num_groups = ", c.num_groups, " and num_reqs = ",
                   c.num_reqs, " must be >= 0");
  PAGEDINFER_CHECK(c.group_indptr != nullptr && (c.num_groups == 0 || c.prefix_len != nullptr), where,
                   "group_indptr and prefix_len must not be null");
  PAGEDINFER_CHECK(c.group_indptr[0] == 0 && c.group_indptr[c.num_groups] == c.num_reqs, where, "group_indptr must run from 0 to num_reqs = ",
                   c.num_reqs, " (it runs from ", c.group_indptr[0], " to ", c.group_indptr[c.num_groups], ")");
  for (int32_t g = 0; g < c.num_groups; ++g) {
    PAGEDINFER_CHECK(c.group_indptr[g + 1] >= c.group_indptr[g], where, "group_indptr must be non-decreasing (entry ",
                     g + 1, ")");
    PAGEDINFER_CHECK(c.prefix_len[g] >= 0, where, "prefix_len[", g, "] = ", c.prefix_len[g], " must be >= 0");
  }
  PAGEDINFER_CHECK(c.num_reqs == 0 || (c.q_indptr && c.suffix_len), where, "q_indptr and suffix_len must not be null");
  for (int32_t r = 0; r < c.num_reqs; ++r)
    PAGEDINFER_CHECK(c.q_indptr[r + 1] - c.q_indptr[r] <= c.suffix_len[r], where, "request ", r, " has q_len = ",
                     c.q_indptr[r + 1] - c.q_indptr[r], " > suffix_len = ", c.suffix_len[r],
                     ": its query tokens are the last of its own KV");
  AttentionProblem unique{c.num_reqs, c.q_indptr, c.suffix_len, c.num_q_heads, c.num_kv_heads,
                          c.head_dim_qk, c.head_dim_v, c.num_threads, 0, 0};
  CascadePlan plan;
  plan.unique = plan_attention(unique);  // checks q_indptr, lengths, heads, dims, threads
  std::vector<int32_t> shared_q{0};
  for (int32_t g = 0; g < c.num_groups; ++g) shared_q.push_back(c.q_indptr[c.group_indptr[g + 1]]);
  AttentionProblem shared = unique;
  shared.num_reqs = c.num_groups;
  shared.q_indptr = shared_q.data();
  shared.kv_len = c.prefix_len;
  // A group's queries all see its whole prefix: 256 rows per item read each prefix page a quarter
  // as often as the default 64 rows (docs/design/attention.md has the measurement).
  shared.q_tile = std::max(1, kSharedRows / std::max(1, c.num_q_heads / std::max(1, c.num_kv_heads)));
  plan.shared = plan_attention(shared);
  plan.workspace_bytes = CascadeLayout(plan).total;
  return plan;
}

void cascade_attention(const CascadePlan& plan, const CascadeParams& p) {
  const char* where = "cascade_attention";
  const CascadeLayout lay(plan);
  PAGEDINFER_CHECK(p.workspace_bytes >= lay.total, where, "workspace_bytes = ", p.workspace_bytes,
                   " is smaller than plan.workspace_bytes = ", lay.total);
  PAGEDINFER_CHECK(p.workspace != nullptr && reinterpret_cast<uintptr_t>(p.workspace) % 64 == 0, where,
                   "workspace must be non-null and 64-byte aligned");
  const AttentionProblem& pr = plan.unique.problem;
  char* ws = static_cast<char*>(p.workspace);
  float* out[2] = {reinterpret_cast<float*>(ws + lay.level_bytes),
                   reinterpret_cast<float*>(ws + lay.level_bytes + lay.out_bytes)};
  float* lse[2] = {reinterpret_cast<float*>(ws + lay.level_bytes + 2 * lay.out_bytes),
                   reinterpret_cast<float*>(ws + lay.level_bytes + 2 * lay.out_bytes + lay.lse_bytes)};
  const int64_t row_stride = int64_t(pr.num_q_heads) * pr.head_dim_v;
  for (int level = 0; level < 2; ++level) {
    const AttentionPlan& lp = level == 0 ? plan.shared : plan.unique;
    AttentionParams a;
    a.q = p.q;
    a.q_indptr = lp.q_indptr.data();
    a.num_q_heads = pr.num_q_heads;
    a.cache = p.cache;
    a.pages = level == 0 ? p.shared_pages : p.unique_pages;
    a.out = {out[level], DType::f32, row_stride, pr.head_dim_v};
    a.lse = lse[level];
    a.scale = p.scale;
    a.softcap = p.softcap;
    a.causal = level == 1;  // every prefix key precedes every query token
    a.workspace = ws;
    a.workspace_bytes = lay.level_bytes;
    paged_attention(lp, a);
  }
  MergeStatesParams m;
  m.num_tokens = plan.unique.q_indptr.back();
  m.num_heads = pr.num_q_heads;
  m.head_dim = pr.head_dim_v;
  m.a = {out[0], DType::f32, row_stride, pr.head_dim_v};
  m.lse_a = lse[0];
  m.b = {out[1], DType::f32, row_stride, pr.head_dim_v};
  m.lse_b = lse[1];
  m.out = p.out;
  m.lse_out = p.lse;
  m.num_threads = pr.num_threads;
  merge_states(m);
}

}  // namespace pagedinfer
