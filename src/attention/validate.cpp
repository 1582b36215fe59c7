#include "attention/validate.hpp"

#include <cmath>

#include "common/check.hpp"
#include "kv_cache/paged.hpp"

namespace pagedinfer::detail {

namespace {

void check_indptr(const int32_t* q_indptr, int32_t num_reqs, const char* where, const char* name) {
  if (num_reqs == 0) return;
  PAGEDINFER_CHECK(q_indptr != nullptr, where, name, " must not be null");
  PAGEDINFER_CHECK(q_indptr[0] == 0, where, name, "[0] = ", q_indptr[0], " must be 0");
  for (int32_t r = 0; r < num_reqs; ++r)
    PAGEDINFER_CHECK(q_indptr[r + 1] >= q_indptr[r], where, name, " must be non-decreasing (", name, "[", r + 1,
                     "] = ", q_indptr[r + 1], " < ", name, "[", r, "] = ", q_indptr[r], ")");
}

void check_heads(int32_t qo, int32_t kv, const char* where) {
  PAGEDINFER_CHECK(kv >= 1, where, "num_kv_heads = ", kv, " must be >= 1");
  PAGEDINFER_CHECK(qo >= 1 && qo % kv == 0, where, "num_q_heads = ", qo,
                   " must be a positive multiple of num_kv_heads = ", kv, " (GQA groups)");
}

// Each request's segment of a custom mask has exactly the size its q_len x kv_len elements need.
void check_custom_mask(const AttentionParams& p, const char* where) {
  if (!p.custom_mask && !p.mask_indptr) return;
  PAGEDINFER_CHECK(p.custom_mask && p.mask_indptr, where, "custom_mask and mask_indptr must be given together");
  const int32_t n = p.pages.num_reqs;
  PAGEDINFER_CHECK(p.mask_indptr[0] == 0, where, "mask_indptr[0] = ", p.mask_indptr[0], " must be 0");
  for (int32_t r = 0; r < n; ++r) {
    const int64_t elements = int64_t(p.q_indptr[r + 1] - p.q_indptr[r]) * p.pages.kv_len[r];
    const int64_t bytes = p.mask_packed ? (elements + 7) / 8 : elements;
    const int64_t got = p.mask_indptr[r + 1] - p.mask_indptr[r];
    PAGEDINFER_CHECK(got == bytes, where, "mask_indptr: request ", r, "'s segment has ", got, " bytes where its q_len x kv_len = ",
                     elements, p.mask_packed ? " bits need " : " elements need ", bytes);
  }
}

}  // namespace

void validate_attention_params(const AttentionParams& p, const char* where) {
  validate_cache(p.cache, where);
  validate_page_table(p.pages, p.cache, where);
  check_heads(p.num_q_heads, p.cache.num_kv_heads, where);
  const int32_t n = p.pages.num_reqs;
  check_indptr(p.q_indptr, n, where, "q_indptr");
  const int64_t total_q = n ? p.q_indptr[n] : 0;
  validate_tokens(p.q.data, p.q.dtype, p.q.stride_token, p.q.stride_head, total_q, p.num_q_heads,
                  p.cache.k.head_dim, where, "q");
  validate_tokens(p.out.data, p.out.dtype, p.out.stride_token, p.out.stride_head, total_q, p.num_q_heads,
                  p.cache.v.head_dim, where, "out");
  PAGEDINFER_CHECK(reinterpret_cast<uintptr_t>(p.lse) % alignof(float) == 0, where, "lse must be 4-byte aligned");
  PAGEDINFER_CHECK(std::isfinite(p.scale), where, "scale = ", p.scale, " must be finite");
  PAGEDINFER_CHECK(std::isfinite(p.softcap) && p.softcap >= 0.f, where, "softcap = ", p.softcap,
                   " must be finite and >= 0 (0 turns it off)");
  PAGEDINFER_CHECK(p.window_left >= -1, where, "window_left = ", p.window_left, " must be >= -1 (-1: unlimited)");
  PAGEDINFER_CHECK(p.window_right >= -1, where, "window_right = ", p.window_right, " must be >= -1 (-1: unlimited)");
  check_custom_mask(p, where);
  if (p.causal)
    for (int32_t r = 0; r < n; ++r) {
      const int32_t q_len = p.q_indptr[r + 1] - p.q_indptr[r];
      PAGEDINFER_CHECK(q_len <= p.pages.kv_len[r], where, "request ", r, " has q_len = ", q_len, " > kv_len = ",
                       p.pages.kv_len[r], ": in causal mode the query tokens must be the last of its KV");
    }
}

void validate_attention_problem(const AttentionProblem& pr) {
  const char* where = "plan_attention";
  PAGEDINFER_CHECK(pr.num_reqs >= 0, where, "num_reqs = ", pr.num_reqs, " must be >= 0");
  check_heads(pr.num_q_heads, pr.num_kv_heads, where);
  for (int32_t d : {pr.head_dim_qk, pr.head_dim_v})
    PAGEDINFER_CHECK(d >= 8 && d <= kMaxHeadDim && d % 8 == 0, where, "head dim ", d,
                     " must be a multiple of 8 in [8, ", kMaxHeadDim, "]");
  detail::check_num_threads(pr.num_threads, where, "num_threads");
  PAGEDINFER_CHECK(pr.kv_chunk >= -1, where, "kv_chunk = ", pr.kv_chunk, " must be -1, 0 or positive");
  PAGEDINFER_CHECK(pr.q_tile >= 0 && int64_t(pr.q_tile) * (pr.num_q_heads / pr.num_kv_heads) <= 1024, where,
                   "q_tile = ", pr.q_tile, " must be 0 (auto) or positive with q_tile x GQA group <= 1024 rows");
  check_indptr(pr.q_indptr, pr.num_reqs, where, "q_indptr");
  if (pr.num_reqs > 0) PAGEDINFER_CHECK(pr.kv_len != nullptr, where, "kv_len must not be null");
  // 2^30 tokens bound every position, tile and chunk sum of the plan inside int32.
  constexpr int32_t kMaxTokens = int32_t(1) << 30;
  if (pr.num_reqs > 0)
    PAGEDINFER_CHECK(pr.q_indptr[pr.num_reqs] <= kMaxTokens, where, "q_indptr[", pr.num_reqs, "] = ",
                     pr.q_indptr[pr.num_reqs], " query tokens exceed 2^30");
  for (int32_t r = 0; r < pr.num_reqs; ++r)
    PAGEDINFER_CHECK(pr.kv_len[r] >= 0 && pr.kv_len[r] <= kMaxTokens, where, "kv_len[", r, "] = ", pr.kv_len[r],
                     " must be in [0, 2^30]");
}

void validate_shape_against_plan(const AttentionPlan& plan, const AttentionParams& p) {
  const char* where = "paged_attention";
  const AttentionProblem& pr = plan.problem;
  PAGEDINFER_CHECK(plan.q_indptr.size() == std::size_t(pr.num_reqs) + 1, where,
                   "plan was not made by plan_attention");
  PAGEDINFER_CHECK(p.pages.num_reqs == pr.num_reqs, where, "pages.num_reqs = ", p.pages.num_reqs,
                   " differs from the plan's ", pr.num_reqs, ": re-plan when the batch changes");
  PAGEDINFER_CHECK(p.num_q_heads == pr.num_q_heads && p.cache.num_kv_heads == pr.num_kv_heads, where,
                   "heads (", p.num_q_heads, " query, ", p.cache.num_kv_heads, " KV) differ from the plan's (",
                   pr.num_q_heads, ", ", pr.num_kv_heads, ")");
  PAGEDINFER_CHECK(p.cache.k.head_dim == pr.head_dim_qk && p.cache.v.head_dim == pr.head_dim_v, where,
                   "head dims (", p.cache.k.head_dim, ", ", p.cache.v.head_dim, ") differ from the plan's (",
                   pr.head_dim_qk, ", ", pr.head_dim_v, ")");
}

void validate_attention_against_plan(const AttentionPlan& plan, const AttentionParams& p, const void* ws,
                                     std::size_t ws_bytes) {
  const char* where = "paged_attention";
  const AttentionProblem& pr = plan.problem;
  validate_shape_against_plan(plan, p);
  for (int32_t r = 0; r < pr.num_reqs; ++r) {
    PAGEDINFER_CHECK(p.q_indptr[r + 1] == plan.q_indptr[std::size_t(r) + 1], where, "q_indptr[", r + 1, "] = ",
                     p.q_indptr[r + 1], " differs from the plan's ", plan.q_indptr[std::size_t(r) + 1],
                     ": re-plan when the batch changes");
    PAGEDINFER_CHECK(p.pages.kv_len[r] == plan.kv_len[std::size_t(r)], where, "pages.kv_len[", r, "] = ",
                     p.pages.kv_len[r], " differs from the plan's ", plan.kv_len[std::size_t(r)],
                     ": re-plan when the batch changes");
  }
  PAGEDINFER_CHECK(ws_bytes >= plan.workspace_bytes, where, "params.workspace_bytes = ", ws_bytes,
                   " is smaller than plan.workspace_bytes = ", plan.workspace_bytes);
  PAGEDINFER_CHECK(plan.workspace_bytes == 0 || ws != nullptr, where, "params.workspace must not be null");
  PAGEDINFER_CHECK(reinterpret_cast<uintptr_t>(ws) % 64 == 0, where, "params.workspace must be 64-byte aligned");
}

}  // namespace pagedinfer::detail
