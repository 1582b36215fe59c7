// pagedinfer: two-level (cascade) attention for requests that share a prompt prefix.
//
// Contract. Requests are partitioned into groups of consecutive requests (group g: requests
// group_indptr[g] .. group_indptr[g+1]-1; a request alone is a group of one). The requests of a
// group share their first prefix_len[g] KV tokens, held once in the pages of shared_pages'
// entry g; request r's own tokens after that, suffix_len[r] of them (its new query tokens
// included), are in unique_pages' entry r. The result is paged_attention (attention.hpp) over each
// request's full KV, prefix then suffix:
//   kv_len = prefix_len[g] + suffix_len[r], query token i at position kv_len - q_len + i,
// causal within the suffix (every prefix key is visible to every query token, which all follow
// it). Computed as two paged_attention calls, the shared level with each group's query tokens
// as one request over the prefix pages (every K/V page of the prefix read once per group instead
// of once per request), the unique level over the suffixes, merged with merge_states' formula.
// Both levels compute in fp32 into the workspace; out is rounded once. The result agrees with
// flat attention within the bound of a split-KV plan (attention.hpp: another split of the KV).
// Options: scale and softcap as paged_attention; windows, ALiBi, sinks and custom masks are not
// offered here (their positions or once-per-row terms span both levels).
#pragma once
#include <cstdint>

#include "pagedinfer/attention.hpp"

namespace pagedinfer {

struct CascadeProblem {
  int32_t num_groups = 0;
  const int32_t* group_indptr = nullptr;  // [num_groups + 1]; 0, non-decreasing, ends at num_reqs
  const int32_t* prefix_len = nullptr;    // [num_groups] shared KV tokens
  int32_t num_reqs = 0;
  const int32_t* q_indptr = nullptr;      // [num_reqs + 1] query tokens, packed request by request
  const int32_t* suffix_len = nullptr;    // [num_reqs] own KV tokens after the prefix, >= q_len
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim_qk = 0;
  int32_t head_dim_v = 0;
  int num_threads = 1;
};

struct CascadePlan {
  AttentionPlan shared;                   // one request per group: its requests' query tokens
  AttentionPlan unique;                   // one request per request: its suffix
  std::size_t workspace_bytes = 0;
};

// Throws pagedinfer::Error for inconsistent metadata.
PAGEDINFER_API CascadePlan plan_cascade(const CascadeProblem& problem);

struct CascadeParams {
  TokensView q;                           // [q_indptr[num_reqs], num_q_heads, head_dim_qk]
  KVCacheView cache;
  PageTable shared_pages;                 // num_groups entries, kv_len = prefix_len
  PageTable unique_pages;                 // num_reqs entries, kv_len = suffix_len
  OutTokensView out;                      // [q_indptr[num_reqs], num_q_heads, head_dim_v]
  float* lse = nullptr;                   // optional [tokens, num_q_heads], natural log
  float scale = 1.0f;
  float softcap = 0.0f;
  void* workspace = nullptr;              // >= plan.workspace_bytes, 64-byte aligned
  std::size_t workspace_bytes = 0;
};

// Runs both levels and the merge on plan.shared.problem.num_threads threads. Validates like
// paged_attention (each level's page table against its plan's lengths).
PAGEDINFER_API void cascade_attention(const CascadePlan& plan, const CascadeParams& params);

}  // namespace pagedinfer
