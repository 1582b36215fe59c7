// pagedinfer: the paged KV cache, viewed in place, and the operations that fill and move it.
//
// A pool is an array of pages; page p holds `page_size` tokens of `num_kv_heads` heads of
// `head_dim` elements. Element (page p, token t, head h, dim d) of a pool is at
//     data + p * stride_page + t * stride_token + h * stride_head + d          (elements)
// so one view describes, without copies,
//   NHD        [pages, page_size, heads, dim]       (FlashAttention, vLLM, FlashInfer default)
//   HND        [pages, heads, page_size, dim]       (FlashInfer HND, vLLM CPU)
//   combined   [pages, 2, page_size, heads, dim] or [pages, 2, heads, page_size, dim]
// K and V share dtype, page size, page count and head count; their head dims may differ
// (MLA: 576 / 512). Any page size >= 1; head dims are multiples of 8 in [8, 1024].
//
// Latent caches (MLA: DeepSeek-V2 / V3, Kimi K2): V may be the leading head_dim_v elements of
// K's rows, v.data == k.data with K's strides (kv_cache_mla, or a Python / DLPack slice
// k[..., :head_dim_v]): one pool, no copy. append_kv and the fused RoPE append then take no value
// (value.data null: K carries it), copy_blocks copies K, and the flat transfer format holds K
// only (kv_block_bytes, gather / scatter, kv_transfer.hpp's page_layout 1).
//
// Quantized caches (dtype f8_e4m3, f8_e5m2 or i8) hold half a bf16 cache's bytes, and decode,
// which reads the whole cache for every token, runs on memory speed:
//   fp8  element = stored value * k_scale (K) or v_scale (V): one fp32 scale per tensor, vLLM's
//        fp8 KV-cache convention (its uint8 cache tensors are used as they are).
//   i8   element = stored value * its row's scale: one fp32 scale per (page, token, head) row,
//        at PagePool::scale with the pool's scale strides (in floats). The view constructors
//        put each page's scales right after its values, so a page carries its own scales
//        (kv_page_bytes gives the size of such a page).
// Writes quantize (append_kv, the fused RoPE append in rope.hpp): the source row is converted
// to fp32 and then
//   fp8  q = fp8(x / scale) (fp32 division, dtype.hpp's rounding: nearest even, saturating).
//        |x - q scale| <= 2^-4 |x| (e4m3) or 2^-3 |x| (e5m2) while |x| >= 2^-6 scale (e4m3)
//        or 2^-14 scale (e5m2); below, <= 2^-10 scale or 2^-17 scale; beyond 448 scale (e4m3)
//        or 57344 scale (e5m2) values saturate.
//   i8   s = max |x| / 127 over the row's head_dim values (fp32), q = x / s rounded to nearest
//        even; |x - q s| <= s / 2 (plus the rounding of x / s: 2^-24 |x|). A row of zeros has
//        s = 0; a row holding an infinity or NaN gets a non-finite scale.
// Attention widens each stored value exactly to fp32, multiplies a key's dot products by its
// scale and a value's probability by its scale in fp32 (attention.hpp's fp32 bound holds
// against attention over the dequantized cache, which the reference computes in double).
// copy_blocks, gather / scatter and KV transfers carry the scales.
//
// A request's KV tokens 0 .. kv_len-1 live in its pages in order: token j is at offset
// j % page_size of the request's (j / page_size)-th page. Pages may be anywhere in the pool,
// in any order; two requests may share a page (prefix sharing). The page list comes in either
// form engines use:
//   padded   block_table [num_reqs, block_table_cols] + kv_len   (vLLM, FlashAttention)
//   CSR      page_indptr [num_reqs + 1] + page_indices + kv_len  (FlashInfer, SGLang)
//
// Speed: allocate pools page-aligned (4 KiB, as mmap or a large-tensor allocator does). One
// head's page of an HND pool (16 tokens x 128 x bf16 = 4 KiB) then spans one OS page, not two.
// Better, back pools with huge pages (pagedinfer/memory.hpp's HugePageAllocator, or
// hugetlbfs): pages read through a shuffled table cost a TLB miss each on 4 KiB pages.
// docs/design/attention.md has the measurements.
#pragma once
#include <cstddef>
#include <cstdint>

#include "pagedinfer/dtype.hpp"
#include "pagedinfer/tensor.hpp"

namespace pagedinfer {

// One pool (all K or all V). Strides are in elements; the head_dim stride is 1.
struct PagePool {
  void* data = nullptr;       // see the indexing rule above; aligned to the element size
  int64_t stride_page = 0;
  int64_t stride_token = 0;
  int64_t stride_head = 0;
  int32_t head_dim = 0;
  // i8 caches only: the scale of row (page p, token t, head h) is
  //     scale[p * scale_stride_page + t * scale_stride_token + h * scale_stride_head]
  float* scale = nullptr;
  int64_t scale_stride_page = 0;
  int64_t scale_stride_token = 0;
  int64_t scale_stride_head = 0;
};

struct KVCacheView {
  PagePool k;
  PagePool v;
  DType dtype = DType::bf16;
  int64_t num_pages = 0;
  int32_t page_size = 0;
  int32_t num_kv_heads = 0;
  float k_scale = 1.f;  // fp8 caches only: element = stored value * scale, finite and > 0
  float v_scale = 1.f;
};

// Views of common layouts. K and V are separate tensors unless the name says combined. For an
// i8 cache each pool page is its values followed by their fp32 scales ([page_size, heads] for
// NHD, [heads, page_size] for HND); a combined page is K values, K scales, V values, V scales.
// fp8 views have k_scale = v_scale = 1: set the cache's scales on the returned view.
PAGEDINFER_API KVCacheView kv_cache_nhd(void* k, void* v, DType dtype, int64_t num_pages, int32_t page_size,
                                        int32_t num_kv_heads, int32_t head_dim_qk, int32_t head_dim_v);
PAGEDINFER_API KVCacheView kv_cache_hnd(void* k, void* v, DType dtype, int64_t num_pages, int32_t page_size,
                                        int32_t num_kv_heads, int32_t head_dim_qk, int32_t head_dim_v);
// kv: [pages, 2, page_size, heads, head_dim] (K at index 0, V at 1).
PAGEDINFER_API KVCacheView kv_cache_combined_nhd(void* kv, DType dtype, int64_t num_pages, int32_t page_size,
                                                 int32_t num_kv_heads, int32_t head_dim);
// kv: [pages, 2, heads, page_size, head_dim].
PAGEDINFER_API KVCacheView kv_cache_combined_hnd(void* kv, DType dtype, int64_t num_pages, int32_t page_size,
                                                 int32_t num_kv_heads, int32_t head_dim);
// A latent cache, kv: [pages, page_size, head_dim_qk] (one KV head); V = the first head_dim_v
// elements of each row (MLA: 576 = 512 latent + 64 rotary, V 512).
PAGEDINFER_API KVCacheView kv_cache_mla(void* kv, DType dtype, int64_t num_pages, int32_t page_size,
                                        int32_t head_dim_qk, int32_t head_dim_v);
// Bytes of one page of one pool in the layouts above (twice this, with head_dim_qk and
// head_dim_v, for a combined page): page_size x heads x head_dim values, and for i8 their
// page_size x heads fp32 scales. Allocate num_pages times this, aligned to 4 bytes at least.
PAGEDINFER_API std::size_t kv_page_bytes(DType dtype, int32_t page_size, int32_t num_kv_heads, int32_t head_dim);

// Which pages hold each request's KV. Set exactly one of the two forms.
struct PageTable {
  int32_t num_reqs = 0;
  const int32_t* kv_len = nullptr;         // [num_reqs] KV tokens of each request, >= 0
  // padded form
  const int32_t* block_table = nullptr;    // [num_reqs, block_table_cols] page ids, row-major
  int32_t block_table_cols = 0;            // row length; kv_len[r] <= cols * page_size
  // CSR form
  const int32_t* page_indptr = nullptr;    // [num_reqs + 1]; page_indptr[0] == 0, non-decreasing
  const int32_t* page_indices = nullptr;   // [page_indptr[num_reqs]] page ids
};

// Writes token i's K and V (all heads) into the cache slot slot_mapping[i], i.e. page
// slot / page_size at offset slot % page_size. A negative slot skips the token (vLLM's padding
// convention). Source dtypes may differ from the cache's (converted, rounding to nearest even;
// into a quantized cache, quantized as stated above).
// Two tokens must not name the same slot. A latent cache takes K only (value.data null).
struct AppendKvParams {
  KVCacheView cache;
  TokensView key;                         // [num_tokens, cache.num_kv_heads, head_dim_qk]
  TokensView value;                       // [num_tokens, cache.num_kv_heads, head_dim_v]; latent: null
  const int64_t* slot_mapping = nullptr;  // [num_tokens]
  int64_t num_tokens = 0;
  int num_threads = 1;
};
PAGEDINFER_API void append_kv(const AppendKvParams& params);
// The registered kernel (kernels.hpp) that quantizes rows into a cache of this 8-bit dtype, now.
PAGEDINFER_API const char* quantize_kv_kernel_name(DType kv_dtype);

// Copies whole pages (K and V, all heads), as used for copy-on-write of a shared prefix. A
// page may be copied to several destinations; a destination may appear once and may not also
// be a source.
struct CopyBlocksParams {
  KVCacheView cache;
  const int32_t* block_pairs = nullptr;  // [num_pairs, 2]: (src, dst) page ids
  int64_t num_pairs = 0;
  int num_threads = 1;
};
PAGEDINFER_API void copy_blocks(const CopyBlocksParams& params);

// Bytes of one page in the flat transfer format: K [page_size, heads, head_dim_qk] followed by
// V [page_size, heads, head_dim_v], in the cache's dtype, then for i8 the fp32 scales of K
// [page_size, heads] and of V [page_size, heads], whatever the cache's own layout is;
// so caches with different layouts (NHD on one machine, HND on another) exchange pages.
PAGEDINFER_API std::size_t kv_block_bytes(const KVCacheView& cache);

// Copies pages block_ids[0..num_blocks) into dst (num_blocks * kv_block_bytes(cache) bytes):
// swap-out to host memory, or exporting a finished prefill's KV to a decode instance.
struct GatherBlocksParams {
  KVCacheView cache;
  const int32_t* block_ids = nullptr;  // [num_blocks]
  int64_t num_blocks = 0;
  void* dst = nullptr;                 // [num_blocks * kv_block_bytes(cache)] bytes
  int num_threads = 1;
};
PAGEDINFER_API void gather_blocks(const GatherBlocksParams& params);

// The inverse: writes num_blocks flat pages from src into pages block_ids[0..num_blocks)
// (unique ids).
struct ScatterBlocksParams {
  KVCacheView cache;
  const void* src = nullptr;           // [num_blocks * kv_block_bytes(cache)] bytes
  const int32_t* block_ids = nullptr;  // [num_blocks], unique
  int64_t num_blocks = 0;
  int num_threads = 1;
};
PAGEDINFER_API void scatter_blocks(const ScatterBlocksParams& params);

}  // namespace pagedinfer
