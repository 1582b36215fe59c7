// pagedinfer: paged attention over a non-contiguous KV cache, variable-length batches.
//
// Contract. Requests r = 0 .. num_reqs-1 each bring q_len = q_indptr[r+1] - q_indptr[r] query
// tokens (packed along the token dimension of q) and attend to their kv_len = page_table.kv_len[r]
// KV tokens (which already include the new tokens). Query token i of the request sits at
// position pos = kv_len - q_len + i (bottom-right aligned: decode has q_len = 1 and pos =
// kv_len - 1; prefill of a fresh prompt has q_len == kv_len; chunked prefill has q_len < kv_len).
// Query head h reads KV head g = h / (num_q_heads / num_kv_heads) (GQA; MQA has one KV head).
//
//   s_j   = scale * <q[i, h], k[j, g]>                          j = 0 .. kv_len-1
//   s_j   = softcap * tanh(s_j / softcap)                       if softcap > 0
//   s_j  -= alibi_slopes[h] * |pos - j|                         if alibi_slopes
//   j is visible iff  (!causal || j <= pos)
//                 and (window_left  < 0 || j >= pos - window_left)
//                 and (window_right < 0 || j <= pos + window_right)
//                 and (!custom_mask || mask(r, i, j))
//   Z     = sum_{visible j} exp(s_j)  +  exp(sinks[h])  (sink term only if sinks)
//   out[i, h] = sum_{visible j} exp(s_j) / Z * v[j, g]
//   lse[i, h] = log(Z)                                          (natural log)
// A row that sees no key gets out = 0 and lse = -inf (or lse = sinks[h] with a sink).
// Validation rejects causal requests with q_len > kv_len.
//
// Custom masks (speculative trees, Jacobi steps; FlashInfer's convention). mask(r, i, j) is
// element k = i * kv_len + j of request r's segment, which starts at custom_mask +
// mask_indptr[r]: packed, bit k % 8 (least significant first) of byte k / 8, the segment
// ceil(q_len * kv_len / 8) bytes; dense (mask_packed false), byte k, nonzero = visible, the
// segment q_len * kv_len bytes. mask_indptr[0] = 0 and each segment has exactly that size. The
// mask combines with the causal and window rules (all must allow j); a tree mask is usually run
// with causal = true, which it already satisfies.
//
// Numerics: q, K and V are read exactly and the kernel computes in fp32 (online softmax over
// tiles of keys); the output is rounded once to its dtype. The reference computes in double.
// One exception, for speed: with bf16 q and bf16 KV on an avx512_bf16 CPU, P = exp(s - m) is
// rounded to bf16 before P.V (bf16 dot products, as FlashAttention and PyTorch's CPU flash
// attention do for bf16 inputs). That adds at most 2^-8 * sum_j p_j |v_j| / Z to each output
// element; cap the ISA at avx512 (set_max_isa) for the all-fp32 kernel.
// For a fixed plan results are bitwise deterministic, whatever the thread scheduling; a plan
// with another split of the KV (other thread count, other kv_chunk) agrees within rounding.
//
// Usage: plan once per batch step (the metadata is the same for every layer), then run every
// layer with the same plan and a caller-owned workspace of plan.workspace_bytes bytes
// (params.workspace). paged_attention never allocates. Any number of threads may run plans concurrently (each its own workspace).
#pragma once
#include <cstdint>
#include <vector>

#include "pagedinfer/kv_cache.hpp"

namespace pagedinfer {

struct AttentionParams {
  TokensView q;                          // [q_indptr[num_reqs], num_q_heads, head_dim_qk]
  const int32_t* q_indptr = nullptr;     // [num_reqs + 1]; q_indptr[0] == 0, non-decreasing
  int32_t num_q_heads = 0;              // multiple of cache.num_kv_heads
  KVCacheView cache;                     // head_dim_qk = cache.k.head_dim, head_dim_v = cache.v.head_dim
  PageTable pages;                       // pages.num_reqs requests and their kv_len
  OutTokensView out;                     // [q_indptr[num_reqs], num_q_heads, head_dim_v]
  float* lse = nullptr;                  // optional [q_indptr[num_reqs], num_q_heads], natural log
  float scale = 1.0f;                    // usually 1 / sqrt(head_dim_qk)
  bool causal = true;
  int32_t window_left = -1;              // -1: unlimited
  int32_t window_right = -1;             // -1: unlimited; causal already limits the right side
  float softcap = 0.0f;                  // 0: off
  const float* alibi_slopes = nullptr;   // optional [num_q_heads]
  const float* sinks = nullptr;          // optional [num_q_heads] logits of the attention sink
  const uint8_t* custom_mask = nullptr;  // optional [mask_indptr[num_reqs]] bytes (see above)
  const int64_t* mask_indptr = nullptr;  // [num_reqs + 1] byte offsets of the requests' segments
  bool mask_packed = true;               // bits (true) or one byte per element (false)
  void* workspace = nullptr;             // >= plan.workspace_bytes, 64-byte aligned, not shared
  std::size_t workspace_bytes = 0;       // with a concurrent call
};

// What a plan depends on: the batch's metadata, the same for every layer of a step.
struct AttentionProblem {
  int32_t num_reqs = 0;
  const int32_t* q_indptr = nullptr;     // [num_reqs + 1]
  const int32_t* kv_len = nullptr;       // [num_reqs]
  int32_t num_q_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim_qk = 0;
  int32_t head_dim_v = 0;
  int num_threads = 1;
  // Split-KV: 0 lets the plan decide (split when requests x KV heads are too few to keep the
  // threads busy); > 0 forces splits of that many KV tokens (tests, tuning); -1 never splits.
  int32_t kv_chunk = 0;
  // Query tokens per work item: 0 lets the plan decide (about 64 rows of tokens x GQA group);
  // > 0 forces it (at most 1024 rows): more rows read each K/V page fewer times when many query
  // tokens see the same long KV (cascade's shared level).
  int32_t q_tile = 0;
};

// One unit of work: rows (query tokens x the query heads of one KV head) against a KV range.
struct AttentionWorkItem {
  int32_t req, kv_head;
  int32_t q_begin, q_end;    // query tokens of the request, [q_begin, q_end)
  int32_t kv_begin, kv_end;  // KV tokens, [kv_begin, kv_end)
  int32_t partial;           // -1: writes the output; else the slot of a split's partial result
};

// Partial results of split rows, merged after all items ran: slots [first, first + count).
struct AttentionMergeItem {
  int32_t req, kv_head, q_begin, q_end;
  int32_t first_partial, num_partials;
};

struct AttentionPlan {
  AttentionProblem problem;               // pointers cleared; metadata kept below
  std::vector<int32_t> q_indptr, kv_len;  // copies, checked against the params at run time
  std::vector<AttentionWorkItem> items;   // in execution order (longest first)
  std::vector<AttentionMergeItem> merges;
  int32_t q_tile = 1;                     // query tokens per work item
  int32_t kv_chunk = 0;                   // KV tokens per split item (0: no splits)
  std::size_t workspace_bytes = 0;
};

// Throws pagedinfer::Error for inconsistent metadata (see the validation rules in run).
PAGEDINFER_API AttentionPlan plan_attention(const AttentionProblem& problem);

// Runs attention for one layer, on plan.problem.num_threads threads. Validates params against
// the plan and the cache before reading anything: every pointer, dtype, stride, page id and
// length is checked, and a pagedinfer::Error names the offending argument.
PAGEDINFER_API void paged_attention(const AttentionPlan& plan, const AttentionParams& params);

// Combines two partial attention results over disjoint key sets of the same rows:
//   lse = log(exp(lse_a) + exp(lse_b)),  out = exp(lse_a - lse) * a + exp(lse_b - lse) * b
// (out = 0 and lse = -inf where both lse are -inf). Each view has its own dtype and strides.
struct MergeStatesParams {
  int64_t num_tokens = 0;
  int32_t num_heads = 0;
  int32_t head_dim = 0;
  TokensView a;                  // [num_tokens, num_heads, head_dim]
  const float* lse_a = nullptr;  // [num_tokens, num_heads], contiguous, natural log
  TokensView b;                  // [num_tokens, num_heads, head_dim]
  const float* lse_b = nullptr;  // [num_tokens, num_heads]
  OutTokensView out;             // [num_tokens, num_heads, head_dim]; may be a or b (same data and strides)
  float* lse_out = nullptr;      // optional [num_tokens, num_heads] (null: not written); may be lse_a or lse_b
  int num_threads = 1;
};
PAGEDINFER_API void merge_states(const MergeStatesParams& params);

// The registered kernel (kernels.hpp) that paged_attention runs for these dtypes, now.
PAGEDINFER_API const char* attention_kernel_name(DType q_dtype, DType kv_dtype);
// How paged_attention fetches K / V pages ahead on this CPU, the vendor's measured choice:
// "rows" (software prefetches of every line of the next two tiles) or "rows_and_streams" (also
// starting the L2 stream prefetcher on each contiguous page run further ahead; AMD).
// PAGEDINFER_CPU_VENDOR=intel|amd takes the other vendor's choice.
PAGEDINFER_API const char* attention_kv_fetch_name();

namespace reference {
// The oracle: gathers each request's pages into dense tensors and evaluates the contract in
// double precision, one row at a time. Validates like paged_attention. Slow by design.
PAGEDINFER_API void paged_attention(const AttentionParams& params);
}  // namespace reference

}  // namespace pagedinfer
