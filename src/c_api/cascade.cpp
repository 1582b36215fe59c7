// The C ABI's cascade attention entry points (pagedinfer.h, cascade.hpp).
#include <cmath>

#include "c_api/guard.hpp"
#include "pagedinfer/pagedinfer.hpp"

using namespace pagedinfer;
namespace dl = pagedinfer::dlpack;
using pagedinfer::c_api::cache_of;
using pagedinfer::c_api::guard;
using pagedinfer::c_api::non_null;

struct pi_cascade_plan {
  CascadePlan plan;
};

namespace {

// A level's padded page table; its lengths are the plan's.
PageTable level_pages(const DLTensor* table, const AttentionPlan& plan, const char* name) {
  int64_t n = 0;
  PageTable t;
  t.num_reqs = plan.problem.num_reqs;
  t.kv_len = plan.kv_len.data();
  t.block_table = dl::index_array<int32_t>(table, name, &n);
  if (table->ndim != 2 || dl::size(*table, 0) != t.num_reqs) dl::fail(name, "must be [entries of its level, cols]");
  t.block_table_cols = int32_t(dl::size(*table, 1));
  return t;
}

}  // namespace

pi_status pi_plan_cascade(const DLTensor* group_indptr, const DLTensor* prefix_len, const DLTensor* q_indptr,
                          const DLTensor* suffix_len, int32_t num_q_heads, int32_t num_kv_heads, int32_t head_dim_qk,
                          int32_t head_dim_v, int num_threads, pi_cascade_plan** plan) {
  return guard([&] {
    non_null(plan, "plan");
    int64_t ng = 0, np = 0, nq = 0, ns = 0;
    CascadeProblem p;
    p.group_indptr = dl::index_array<int32_t>(group_indptr, "group_indptr", &ng);
    p.prefix_len = dl::index_array<int32_t>(prefix_len, "prefix_len", &np);
    p.q_indptr = dl::index_array<int32_t>(q_indptr, "q_indptr", &nq);
    p.suffix_len = dl::index_array<int32_t>(suffix_len, "suffix_len", &ns);
    if (ng != np + 1) dl::fail("group_indptr", "must have len(prefix_len) + 1 entries");
    if (nq != ns + 1) dl::fail("q_indptr", "must have len(suffix_len) + 1 entries");
    p.num_groups = int32_t(np);
    p.num_reqs = int32_t(ns);
    p.num_q_heads = num_q_heads;
    p.num_kv_heads = num_kv_heads;
    p.head_dim_qk = head_dim_qk;
    p.head_dim_v = head_dim_v;
    p.num_threads = num_threads;
    *plan = new pi_cascade_plan{plan_cascade(p)};
  });
}

size_t pi_cascade_workspace_bytes(const pi_cascade_plan* plan) { return plan ? plan->plan.workspace_bytes : 0; }
void pi_cascade_plan_destroy(pi_cascade_plan* plan) { delete plan; }

pi_status pi_cascade_attention(const pi_cascade_plan* plan, const pi_cascade_args* a) {
  return guard([&] {
    non_null(plan, "plan");
    non_null(a, "args");
    CascadeParams p;
    p.q = dl::tokens(a->q, "q");
    p.cache = cache_of(&a->cache);
    p.shared_pages = level_pages(a->shared_block_table, plan->plan.shared, "shared_block_table");
    p.unique_pages = level_pages(a->unique_block_table, plan->plan.unique, "unique_block_table");
    p.out = dl::out_tokens(a->out, "out");
    p.lse = pagedinfer::c_api::optional_lse(a->lse, a->q);
    p.scale = a->scale != 0.f ? a->scale : 1.0f / std::sqrt(float(p.cache.k.head_dim));
    p.softcap = a->softcap;
    p.workspace = a->workspace;
    p.workspace_bytes = a->workspace_bytes;
    cascade_attention(plan->plan, p);
  });
}
