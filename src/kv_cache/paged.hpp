// Internal helpers over the paged KV cache: validation (used by every op that takes a cache or
// a page table) and addressing (used by kernels; internal linkage, see scalar_convert.hpp).
#pragma once
#include <cstdint>

#include "common/tensor_check.hpp"
#include "pagedinfer/kv_cache.hpp"
#include "quantize_kv/kernel.hpp"

namespace pagedinfer::detail {

// Throws pagedinfer::Error unless the view is usable: valid dtype, page_size >= 1, heads >= 1,
// head dims multiples of 8 in [8, kMaxHeadDim], non-null element-aligned data, positive strides
// whose (page, token, head, dim) elements do not overlap.
void validate_cache(const KVCacheView& cache, const char* where);

// Throws unless exactly one form is set, every kv_len is >= 0 and fits the request's pages,
// and every page id a request uses is inside [0, num_pages). O(number of used pages).
void validate_page_table(const PageTable& table, const KVCacheView& cache, const char* where);

// Throws unless value fits the cache: [num_tokens, heads, head_dim_v] tokens, or null for a
// latent cache (K carries V).
void validate_value(const KVCacheView& cache, const TokensView& value, int64_t num_tokens, const char* where);

// Throws unless slot_mapping (num_tokens entries; negative = skip) is non-null when needed and
// every slot lies inside the cache's num_pages * page_size slots.
void validate_slots(const KVCacheView& cache, const int64_t* slot_mapping, int64_t num_tokens, const char* where);

// Copies page `page` of a validated cache into `flat` in the flat transfer format (K then V,
// kv_block_bytes(cache) bytes): gather_blocks' body, without its validation, for callers that
// validated the ids already (export_kv, page by page).
void gather_page(const KVCacheView& cache, int64_t page, void* flat);

constexpr int32_t kMaxHeadDim = 1024;

namespace {

// Page ids of request r, in token order.
inline const int32_t* request_pages(const PageTable& t, int32_t r) {
  return t.block_table ? t.block_table + int64_t(r) * t.block_table_cols : t.page_indices + t.page_indptr[r];
}

inline int64_t pages_for(int64_t tokens, int32_t page_size) { return (tokens + page_size - 1) / page_size; }

// A latent cache (MLA): V is the leading head_dim_v elements of K's rows (kv_cache.hpp).
inline bool v_in_k(const KVCacheView& c) {
  return c.v.data == c.k.data && c.v.stride_page == c.k.stride_page && c.v.stride_token == c.k.stride_token &&
         c.v.stride_head == c.k.stride_head && c.v.head_dim <= c.k.head_dim && c.v.scale == c.k.scale;
}

// Caches whose rows carry their own scale (i8), and caches that are quantized at all.
inline bool has_row_scales(const KVCacheView& c) { return c.dtype == DType::i8; }
inline bool is_quantized(const KVCacheView& c) { return !is_float_dtype(c.dtype); }

// Scale of row (page, token-in-page, head) of an i8 pool.
inline float& row_scale(const PagePool& p, int64_t page, int64_t token, int64_t head) {
  return p.scale[page * p.scale_stride_page + token * p.scale_stride_token + head * p.scale_stride_head];
}

// Offset in elements of (page, token-in-page, head) in a pool.
inline int64_t row_offset(const PagePool& p, int64_t page, int64_t token, int64_t head) {
  return page * p.stride_page + token * p.stride_token + head * p.stride_head;
}

// The scale of row (page, token-in-page, head) of K (v false) or V: 1 for a float cache, the
// tensor's for fp8, the row's own for i8 (kv_cache.hpp: element = stored value * scale).
inline float kv_scale(const KVCacheView& c, bool v, int64_t page, int64_t token, int64_t head) {
  if (has_row_scales(c)) return row_scale(v ? c.v : c.k, page, token, head);
  return !is_quantized(c) ? 1.f : v ? c.v_scale : c.k_scale;
}

// Quantizes x (the pool's head_dim values) into row (page, token-in-page, head) of a quantized
// cache's pool, and stores the row's scale in an i8 pool. tensor_scale: the pool's fp8 scale.
inline void store_quantized_row(const KVCacheView& c, const PagePool& p, float tensor_scale, QuantizeRowKernel quantize,
                                int64_t page, int64_t token, int64_t head, const float* x) {
  void* dst = static_cast<char*>(p.data) + row_offset(p, page, token, head);  // 1-byte elements
  const float s = quantize(x, p.head_dim, tensor_scale, dst);
  if (has_row_scales(c)) row_scale(p, page, token, head) = s;
}

}  // namespace
}  // namespace pagedinfer::detail
