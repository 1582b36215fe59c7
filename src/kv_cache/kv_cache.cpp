// KV-cache views and the operations that move pages (append_kv, which converts and quantizes,
// is in append.cpp). These are copies: each moves contiguous head_dim rows (or whole pages when
// the layout allows) with memcpy, which glibc already runs at the widest vector width the CPU
// has, so there is no per-ISA kernel here.
#include <algorithm>
#include <cstring>
#include <vector>

#include "common/check.hpp"
#include "common/convert.hpp"
#include "common/threading.hpp"
#include "kv_cache/paged.hpp"

namespace pagedinfer {

namespace {

// The view constructors' shape: checked before any size product or pointer offset is formed.
void check_view_shape(const char* where, void* k, DType dtype, int64_t num_pages, int32_t page_size, int32_t heads,
                      int32_t dk, int32_t dv) {
  PAGEDINFER_CHECK(dtype_size(dtype) != 0, where, "dtype = ", int(dtype), " is not a DType");
  PAGEDINFER_CHECK(num_pages >= 0, where, "num_pages = ", num_pages, " must be >= 0");
  PAGEDINFER_CHECK(page_size >= 1, where, "page_size = ", page_size, " must be >= 1");
  PAGEDINFER_CHECK(heads >= 1, where, "num_kv_heads = ", heads, " must be >= 1");
  for (int32_t d : {dk, dv})
    PAGEDINFER_CHECK(d >= 8 && d <= 1024 && d % 8 == 0, where, "head dim ", d, " must be a multiple of 8 in [8, 1024]");
  // A pool's elements must be addressable: pages * page elements * 2 (combined) well inside int64.
  const int64_t page_elems = int64_t(page_size) * heads * std::max(dk, dv);
  PAGEDINFER_CHECK(page_elems <= (int64_t(1) << 40) / 2 && num_pages <= ((int64_t(1) << 62) / 2) / page_elems,
                   where, "num_pages x page_size x num_kv_heads x head_dim overflows");
  PAGEDINFER_CHECK(num_pages == 0 || k != nullptr, where, "the pool's data must not be null");
}

// Bytes of one pool page's values (its scales follow them in an i8 view).
int64_t page_value_bytes(DType dtype, int32_t page_size, int32_t heads, int32_t d) {
  return int64_t(page_size) * heads * d * int64_t(dtype_size(dtype));
}

// A pool whose pages start every `page_bytes` bytes from `data` (NHD or HND inside a page); an
// i8 pool's scales follow each page's values, in the same order of tokens and heads.
PagePool make_pool(char* data, DType dtype, int32_t page_size, int32_t heads, int32_t d, bool hnd, int64_t page_bytes) {
  PagePool p;
  p.data = data;
  p.head_dim = d;
  p.stride_page = page_bytes / int64_t(dtype_size(dtype));
  p.stride_token = hnd ? d : int64_t(heads) * d;
  p.stride_head = hnd ? int64_t(page_size) * d : d;
  if (dtype == DType::i8 && data) {
    p.scale = reinterpret_cast<float*>(data + page_value_bytes(dtype, page_size, heads, d));
    p.scale_stride_page = page_bytes / 4;
    p.scale_stride_token = hnd ? 1 : heads;
    p.scale_stride_head = hnd ? page_size : 1;
  }
  return p;
}

KVCacheView make_view(void* k, void* v, DType dtype, int64_t num_pages, int32_t page_size, int32_t heads,
                      int32_t dk, int32_t dv, bool hnd, int64_t k_page_bytes, int64_t v_page_bytes) {
  KVCacheView c;
  c.dtype = dtype;
  c.num_pages = num_pages;
  c.page_size = page_size;
  c.num_kv_heads = heads;
  c.k = make_pool(static_cast<char*>(k), dtype, page_size, heads, dk, hnd, k_page_bytes);
  c.v = make_pool(static_cast<char*>(v), dtype, page_size, heads, dv, hnd, v_page_bytes);
  return c;
}

// Bytes between consecutive rows of the flat transfer format and the size of one flat page.
int64_t flat_pool_elems(const KVCacheView& c, const PagePool& p) {
  return int64_t(c.page_size) * c.num_kv_heads * p.head_dim;
}

// True when a page of the pool is one dense [page_size, heads, dim] block (flat order).
bool page_is_flat(const KVCacheView& c, const PagePool& p) {
  return p.stride_head == p.head_dim && p.stride_token == int64_t(c.num_kv_heads) * p.head_dim;
}

// Copies one pool page between the cache and a flat [page_size, heads, dim] buffer.
void copy_page(const KVCacheView& c, const PagePool& p, int64_t page, char* flat, bool to_flat) {
  const std::size_t es = dtype_size(c.dtype);
  char* base = static_cast<char*>(p.data);
  if (page_is_flat(c, p)) {
    char* cache = base + detail::row_offset(p, page, 0, 0) * es;
    const std::size_t bytes = std::size_t(flat_pool_elems(c, p)) * es;
    to_flat ? std::memcpy(flat, cache, bytes) : std::memcpy(cache, flat, bytes);
    return;
  }
  const std::size_t row = std::size_t(p.head_dim) * es;
  for (int32_t t = 0; t < c.page_size; ++t)
    for (int32_t h = 0; h < c.num_kv_heads; ++h, flat += row) {
      char* cache = base + detail::row_offset(p, page, t, h) * es;
      to_flat ? std::memcpy(flat, cache, row) : std::memcpy(cache, flat, row);
    }
}

void copy_page_in_cache(const KVCacheView& c, const PagePool& p, int64_t src, int64_t dst) {
  const std::size_t es = dtype_size(c.dtype);
  char* base = static_cast<char*>(p.data);
  if (page_is_flat(c, p)) {
    std::memcpy(base + detail::row_offset(p, dst, 0, 0) * es, base + detail::row_offset(p, src, 0, 0) * es,
                std::size_t(flat_pool_elems(c, p)) * es);
    return;
  }
  const std::size_t row = std::size_t(p.head_dim) * es;
  for (int32_t t = 0; t < c.page_size; ++t)
    for (int32_t h = 0; h < c.num_kv_heads; ++h)
      std::memcpy(base + detail::row_offset(p, dst, t, h) * es, base + detail::row_offset(p, src, t, h) * es, row);
}

// An i8 pool page's scales to or from a flat [page_size, heads] fp32 buffer.
void copy_scales(const KVCacheView& c, const PagePool& p, int64_t page, char* flat, bool to_flat) {
  for (int32_t t = 0; t < c.page_size; ++t)
    for (int32_t h = 0; h < c.num_kv_heads; ++h, flat += 4) {
      float& s = detail::row_scale(p, page, t, h);
      to_flat ? std::memcpy(flat, &s, 4) : std::memcpy(&s, flat, 4);
    }
}

// Where each part of a page sits in the flat transfer format (kv_cache.hpp), in bytes.
struct FlatPage {
  std::size_t k = 0, v = 0, k_scale = 0, v_scale = 0, bytes = 0;
};

FlatPage flat_page(const KVCacheView& c) {
  const bool latent = detail::v_in_k(c);
  const std::size_t es = dtype_size(c.dtype), rows = std::size_t(c.page_size) * std::size_t(c.num_kv_heads);
  FlatPage f;
  f.v = f.k + rows * std::size_t(c.k.head_dim) * es;
  f.k_scale = f.v + (latent ? 0 : rows * std::size_t(c.v.head_dim) * es);
  const std::size_t scales = detail::has_row_scales(c) ? rows * 4 : 0;
  f.v_scale = f.k_scale + scales;
  f.bytes = f.v_scale + (latent ? 0 : scales);
  return f;
}

// Moves page `page` between the cache and a flat page (all of it: values, then scales).
void copy_flat_page(const KVCacheView& c, int64_t page, char* flat, bool to_flat) {
  const FlatPage f = flat_page(c);
  const bool latent = detail::v_in_k(c);
  copy_page(c, c.k, page, flat + f.k, to_flat);
  if (!latent) copy_page(c, c.v, page, flat + f.v, to_flat);
  if (!detail::has_row_scales(c)) return;
  copy_scales(c, c.k, page, flat + f.k_scale, to_flat);
  if (!latent) copy_scales(c, c.v, page, flat + f.v_scale, to_flat);
}

void copy_scales_in_cache(const KVCacheView& c, const PagePool& p, int64_t src, int64_t dst) {
  for (int32_t t = 0; t < c.page_size; ++t)
    for (int32_t h = 0; h < c.num_kv_heads; ++h) detail::row_scale(p, dst, t, h) = detail::row_scale(p, src, t, h);
}

void check_block_ids(const KVCacheView& c, const int32_t* ids, int64_t n, const char* where, const char* name) {
  PAGEDINFER_CHECK(n >= 0, where, "the block count ", n, " must be >= 0");
  PAGEDINFER_CHECK(n == 0 || ids != nullptr, where, name, " must not be null");
  for (int64_t i = 0; i < n; ++i)
    PAGEDINFER_CHECK(ids[i] >= 0 && ids[i] < c.num_pages, where, name, "[", i, "] = ", ids[i],
                     " is outside the pool [0, ", c.num_pages, ")");
}

// Copies of one pool page go in parallel over pages; a page is large enough (kilobytes) that a
// grain of one page keeps the scheduling cost small.
constexpr int64_t kPageGrain = 4;

}  // namespace

KVCacheView kv_cache_nhd(void* k, void* v, DType dtype, int64_t num_pages, int32_t page_size, int32_t heads,
                         int32_t dk, int32_t dv) {
  check_view_shape("kv_cache_nhd", k, dtype, num_pages, page_size, heads, dk, dv);
  return make_view(k, v, dtype, num_pages, page_size, heads, dk, dv, false,
                   int64_t(kv_page_bytes(dtype, page_size, heads, dk)), int64_t(kv_page_bytes(dtype, page_size, heads, dv)));
}

KVCacheView kv_cache_hnd(void* k, void* v, DType dtype, int64_t num_pages, int32_t page_size, int32_t heads,
                         int32_t dk, int32_t dv) {
  check_view_shape("kv_cache_hnd", k, dtype, num_pages, page_size, heads, dk, dv);
  return make_view(k, v, dtype, num_pages, page_size, heads, dk, dv, true,
                   int64_t(kv_page_bytes(dtype, page_size, heads, dk)), int64_t(kv_page_bytes(dtype, page_size, heads, dv)));
}

namespace {

// V of a combined pool starts `half` bytes after K; an empty (null) pool has no V either.
char* v_half(void* kv, int64_t half) { return kv ? static_cast<char*>(kv) + half : nullptr; }

}  // namespace

KVCacheView kv_cache_combined_nhd(void* kv, DType dtype, int64_t num_pages, int32_t page_size, int32_t heads,
                                  int32_t d) {
  check_view_shape("kv_cache_combined_nhd", kv, dtype, num_pages, page_size, heads, d, d);
  const int64_t half = int64_t(kv_page_bytes(dtype, page_size, heads, d));
  return make_view(kv, v_half(kv, half), dtype, num_pages, page_size, heads, d, d, false, 2 * half, 2 * half);
}

KVCacheView kv_cache_combined_hnd(void* kv, DType dtype, int64_t num_pages, int32_t page_size, int32_t heads,
                                  int32_t d) {
  check_view_shape("kv_cache_combined_hnd", kv, dtype, num_pages, page_size, heads, d, d);
  const int64_t half = int64_t(kv_page_bytes(dtype, page_size, heads, d));
  return make_view(kv, v_half(kv, half), dtype, num_pages, page_size, heads, d, d, true, 2 * half, 2 * half);
}

KVCacheView kv_cache_mla(void* kv, DType dtype, int64_t num_pages, int32_t page_size, int32_t dk, int32_t dv) {
  const char* where = "kv_cache_mla";
  check_view_shape(where, kv, dtype, num_pages, page_size, 1, dk, dv);
  PAGEDINFER_CHECK(dv <= dk, where, "head_dim_v = ", dv, " must be <= head_dim_qk = ", dk, ": V is the leading part of K");
  const int64_t page_bytes = int64_t(kv_page_bytes(dtype, page_size, 1, dk));
  KVCacheView c = make_view(kv, kv, dtype, num_pages, page_size, 1, dk, dk, false, page_bytes, page_bytes);
  c.v.head_dim = dv;
  return c;
}

std::size_t kv_page_bytes(DType dtype, int32_t page_size, int32_t heads, int32_t head_dim) {
  check_view_shape("kv_page_bytes", nullptr, dtype, 0, page_size, heads, head_dim, head_dim);
  const int64_t values = page_value_bytes(dtype, page_size, heads, head_dim);
  return std::size_t(values + (dtype == DType::i8 ? int64_t(page_size) * heads * 4 : 0));
}

void copy_blocks(const CopyBlocksParams& p) {
  const char* where = "copy_blocks";
  const KVCacheView& c = p.cache;
  const int32_t* pairs = p.block_pairs;
  const int64_t num_pairs = p.num_pairs;
  const int num_threads = p.num_threads;
  PAGEDINFER_CHECK(num_pairs >= 0, where, "num_pairs = ", num_pairs, " must be >= 0");
  detail::validate_cache(c, where);
  detail::check_num_threads(num_threads, where, "num_threads");
  check_block_ids(c, pairs, 2 * num_pairs, where, "block_pairs");
  // A destination written twice, or read as a source, would make the result depend on order.
  std::vector<uint8_t> role(std::size_t(c.num_pages), 0);  // bit 0: source, bit 1: destination
  for (int64_t i = 0; i < num_pairs; ++i) role[std::size_t(pairs[2 * i])] |= 1;
  for (int64_t i = 0; i < num_pairs; ++i) {
    const int32_t dst = pairs[2 * i + 1];
    PAGEDINFER_CHECK(role[std::size_t(dst)] == 0, where, "block_pairs[", i, "] destination ", dst,
                     (role[std::size_t(dst)] & 2) ? " appears twice as a destination" : " is also a source");
    role[std::size_t(dst)] |= 2;
  }
  detail::parallel_for(num_pairs, num_threads, kPageGrain, [&](int64_t i) {
    const bool latent = detail::v_in_k(c);
    copy_page_in_cache(c, c.k, pairs[2 * i], pairs[2 * i + 1]);
    if (!latent) copy_page_in_cache(c, c.v, pairs[2 * i], pairs[2 * i + 1]);
    if (!detail::has_row_scales(c)) return;
    copy_scales_in_cache(c, c.k, pairs[2 * i], pairs[2 * i + 1]);
    if (!latent) copy_scales_in_cache(c, c.v, pairs[2 * i], pairs[2 * i + 1]);
  });
}

std::size_t kv_block_bytes(const KVCacheView& c) {
  detail::validate_cache(c, "kv_block_bytes");
  return flat_page(c).bytes;
}

void gather_blocks(const GatherBlocksParams& p) {
  const char* where = "gather_blocks";
  const KVCacheView& c = p.cache;
  const int32_t* ids = p.block_ids;
  const int64_t n = p.num_blocks;
  void* dst = p.dst;
  const int num_threads = p.num_threads;
  detail::validate_cache(c, where);
  detail::check_num_threads(num_threads, where, "num_threads");
  check_block_ids(c, ids, n, where, "block_ids");
  PAGEDINFER_CHECK(n == 0 || dst != nullptr, where, "dst must not be null");
  const std::size_t block = kv_block_bytes(c);
  detail::parallel_for(n, num_threads, kPageGrain,
                       [&](int64_t i) { detail::gather_page(c, ids[i], static_cast<char*>(dst) + std::size_t(i) * block); });
}

void detail::gather_page(const KVCacheView& c, int64_t page, void* flat) {
  copy_flat_page(c, page, static_cast<char*>(flat), true);
}

void scatter_blocks(const ScatterBlocksParams& p) {
  const char* where = "scatter_blocks";
  const KVCacheView& c = p.cache;
  const void* src = p.src;
  const int32_t* ids = p.block_ids;
  const int64_t n = p.num_blocks;
  const int num_threads = p.num_threads;
  detail::validate_cache(c, where);
  detail::check_num_threads(num_threads, where, "num_threads");
  check_block_ids(c, ids, n, where, "block_ids");
  PAGEDINFER_CHECK(n == 0 || src != nullptr, where, "src must not be null");
  std::vector<uint8_t> seen(std::size_t(c.num_pages), 0);
  for (int64_t i = 0; i < n; ++i) {
    PAGEDINFER_CHECK(!seen[std::size_t(ids[i])], where, "block_ids[", i, "] = ", ids[i], " appears twice");
    seen[std::size_t(ids[i])] = 1;
  }
  const std::size_t block = kv_block_bytes(c);
  detail::parallel_for(n, num_threads, kPageGrain, [&](int64_t i) {
    copy_flat_page(c, ids[i], const_cast<char*>(static_cast<const char*>(src)) + std::size_t(i) * block, false);
  });
}

}  // namespace pagedinfer
