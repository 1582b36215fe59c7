#include <cmath>
#include <utility>

#include "common/check.hpp"
#include "common/tensor_check.hpp"
#include "kv_cache/paged.hpp"

namespace pagedinfer::detail {

namespace {

void validate_pool(const PagePool& p, const KVCacheView& c, const char* where, const char* name) {
  PAGEDINFER_CHECK(p.head_dim >= 8 && p.head_dim <= kMaxHeadDim && p.head_dim % 8 == 0, where, "cache.", name,
                   ".head_dim = ", p.head_dim, " must be a multiple of 8 in [8, ", kMaxHeadDim, "]");
  PAGEDINFER_CHECK(p.data != nullptr, where, "cache.", name, ".data must not be null");
  PAGEDINFER_CHECK(aligned_to(p.data, c.dtype), where, "cache.", name, ".data must be aligned to ",
                   dtype_size(c.dtype), " bytes (its dtype ", dtype_name(c.dtype), ")");
  PAGEDINFER_CHECK(p.stride_page > 0 && p.stride_token > 0 && p.stride_head > 0, where, "cache.", name,
                   " strides must be positive (page ", p.stride_page, ", token ", p.stride_token, ", head ",
                   p.stride_head, ")");
  std::pair<int64_t, int64_t> dims[4] = {
      {c.num_pages, p.stride_page}, {c.page_size, p.stride_token}, {c.num_kv_heads, p.stride_head}, {p.head_dim, 1}};
  PAGEDINFER_CHECK(strides_disjoint(dims), where, "cache.", name, " strides (page ", p.stride_page, ", token ",
                   p.stride_token, ", head ", p.stride_head, ") make elements overlap");
  if (!has_row_scales(c)) return;
  PAGEDINFER_CHECK(p.scale != nullptr, where, "cache.", name, ".scale must not be null: an i8 cache has a scale per row");
  PAGEDINFER_CHECK(reinterpret_cast<uintptr_t>(p.scale) % 4 == 0, where, "cache.", name,
                   ".scale must be aligned to 4 bytes (fp32)");
  PAGEDINFER_CHECK(p.scale_stride_page > 0 && p.scale_stride_token > 0 && p.scale_stride_head > 0, where, "cache.",
                   name, " scale strides must be positive (page ", p.scale_stride_page, ", token ",
                   p.scale_stride_token, ", head ", p.scale_stride_head, ")");
  std::pair<int64_t, int64_t> rows[4] = {
      {c.num_pages, p.scale_stride_page}, {c.page_size, p.scale_stride_token}, {c.num_kv_heads, p.scale_stride_head}, {1, 1}};
  PAGEDINFER_CHECK(strides_disjoint(rows), where, "cache.", name, " scale strides (page ", p.scale_stride_page,
                   ", token ", p.scale_stride_token, ", head ", p.scale_stride_head, ") make scales overlap");
}

}  // namespace

void validate_cache(const KVCacheView& c, const char* where) {
  PAGEDINFER_CHECK(dtype_size(c.dtype) != 0, where, "cache.dtype is not a valid DType");
  PAGEDINFER_CHECK(c.num_pages >= 0, where, "cache.num_pages = ", c.num_pages, " must be >= 0");
  PAGEDINFER_CHECK(c.page_size >= 1, where, "cache.page_size = ", c.page_size, " must be >= 1");
  PAGEDINFER_CHECK(c.num_kv_heads >= 1, where, "cache.num_kv_heads = ", c.num_kv_heads, " must be >= 1");
  if (c.dtype == DType::f8_e4m3 || c.dtype == DType::f8_e5m2)
    PAGEDINFER_CHECK(std::isfinite(c.k_scale) && c.k_scale > 0.f && std::isfinite(c.v_scale) && c.v_scale > 0.f, where,
                     "cache.k_scale = ", c.k_scale, " and cache.v_scale = ", c.v_scale,
                     " must be finite and > 0 (an fp8 cache's element = stored value * scale)");
  validate_pool(c.k, c, where, "k");
  validate_pool(c.v, c, where, "v");
  if (v_in_k(c) && (c.dtype == DType::f8_e4m3 || c.dtype == DType::f8_e5m2))
    PAGEDINFER_CHECK(c.v_scale == c.k_scale, where, "cache.v_scale = ", c.v_scale, " must equal cache.k_scale = ",
                     c.k_scale, " in a latent cache: V is the leading part of K's rows");
}

void validate_page_table(const PageTable& t, const KVCacheView& c, const char* where) {
  PAGEDINFER_CHECK(t.num_reqs >= 0, where, "page_table.num_reqs = ", t.num_reqs, " must be >= 0");
  if (t.num_reqs == 0) return;
  PAGEDINFER_CHECK(t.kv_len != nullptr, where, "page_table.kv_len must not be null");
  const bool padded = t.block_table != nullptr;
  const bool csr = t.page_indptr != nullptr || t.page_indices != nullptr;
  PAGEDINFER_CHECK(padded != csr, where,
                   "page_table must set exactly one form: block_table, or page_indptr + page_indices");
  if (padded) PAGEDINFER_CHECK(t.block_table_cols >= 0, where, "page_table.block_table_cols must be >= 0");
  if (csr) {
    PAGEDINFER_CHECK(t.page_indptr && t.page_indices, where,
                     "page_table CSR form needs both page_indptr and page_indices");
    PAGEDINFER_CHECK(t.page_indptr[0] == 0, where, "page_table.page_indptr[0] = ", t.page_indptr[0], " must be 0");
    // The whole index array's shape before any of its contents: page_indices has
    // page_indptr[num_reqs] entries only if page_indptr never decreases.
    for (int32_t r = 0; r < t.num_reqs; ++r)
      PAGEDINFER_CHECK(t.page_indptr[r + 1] >= t.page_indptr[r], where,
                       "page_table.page_indptr must be non-decreasing (page_indptr[", r + 1, "] = ",
                       t.page_indptr[r + 1], " < page_indptr[", r, "] = ", t.page_indptr[r], ")");
  }
  for (int32_t r = 0; r < t.num_reqs; ++r) {
    const int32_t len = t.kv_len[r];
    PAGEDINFER_CHECK(len >= 0, where, "page_table.kv_len[", r, "] = ", len, " must be >= 0");
    const int64_t need = pages_for(len, c.page_size);
    int64_t have;
    if (padded) {
      have = t.block_table_cols;
    } else {
      have = int64_t(t.page_indptr[r + 1]) - t.page_indptr[r];
    }
    PAGEDINFER_CHECK(need <= have, where, "page_table.kv_len[", r, "] = ", len, " needs ", need, " pages of ",
                     c.page_size, " tokens but the request has ", have, " pages");
    const int32_t* pages = request_pages(t, r);
    for (int64_t i = 0; i < need; ++i) {
      PAGEDINFER_CHECK(pages[i] >= 0 && pages[i] < c.num_pages, where, "page_table.",
                       padded ? "block_table[" : "page_indices[", padded ? int64_t(r) : t.page_indptr[r] + i,
                       padded ? "][" : "", padded ? std::to_string(i) : std::string(), "]: page id ", pages[i],
                       " (request ", r, ", page ", i, ") is outside the pool [0, ", c.num_pages, ")");
    }
  }
}

void validate_value(const KVCacheView& c, const TokensView& value, int64_t num_tokens, const char* where) {
  if (v_in_k(c)) {
    PAGEDINFER_CHECK(value.data == nullptr, where, "value must be null: the cache's V is the leading head_dim_v = ",
                     c.v.head_dim, " elements of K (a latent cache), so K carries it");
    return;
  }
  validate_tokens(value.data, value.dtype, value.stride_token, value.stride_head, num_tokens, c.num_kv_heads,
                  c.v.head_dim, where, "value");
}

void validate_slots(const KVCacheView& c, const int64_t* slot_mapping, int64_t num_tokens, const char* where) {
  PAGEDINFER_CHECK(num_tokens == 0 || slot_mapping != nullptr, where, "slot_mapping must not be null");
  const int64_t slots = c.num_pages * c.page_size;
  for (int64_t i = 0; i < num_tokens; ++i)
    PAGEDINFER_CHECK(slot_mapping[i] < slots, where, "slot_mapping[", i, "] = ", slot_mapping[i],
                     " is beyond the cache's num_pages * page_size = ", slots);
}

}  // namespace pagedinfer::detail
