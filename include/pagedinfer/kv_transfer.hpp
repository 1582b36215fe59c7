// pagedinfer: moving one sequence's KV cache between machines (disaggregated prefill / decode).
//
// A transfer is self-describing bytes, little-endian:
//   header (64 bytes)  "PGDIKVT\0" | u32 version 1 | u32 dtype | i32 page_size, num_kv_heads,
//                      head_dim_qk, head_dim_v, num_layers, num_pages | i64 num_tokens
//                      | f32 k_scale, v_scale | u32 page_layout 0 or 1 | u32 reserved 0
//   pages              for each layer, num_pages pages in the flat transfer format of
//                      kv_cache.hpp (page_layout 0: K [page_size, heads, head_dim_qk] then V
//                      [page_size, heads, head_dim_v]; 1: K only, from a latent cache whose V
//                      is the leading head_dim_v of K), whatever either side's pool layout is
//   u64 checksum       of every byte before it: the packed weight file's word checksum of the
//                      header followed by each page's word checksum (pages layer-major), so
//                      that export_kv checksums each page as it gathers it, on every thread
// num_pages = ceil(num_tokens / page_size); tokens past num_tokens in the last page are carried
// as they are. k_scale and v_scale are an fp8 cache's per-tensor scales (1 for every other
// dtype), sent so that a receiver with other scales refuses the transfer instead of misreading
// it; an i8 cache's row scales travel inside its pages (kv_cache.hpp's flat format).
//
// import_kv validates everything (header, length, checksum, that the receiving caches match the
// dtype, page size, heads and head dims, block ids unique and inside the pool) before it writes a
// byte: a truncated, corrupt or mismatched transfer gets an Error naming the rule and leaves the
// receiving pool untouched.
#pragma once
#include <cstddef>
#include <cstdint>

#include "pagedinfer/kv_cache.hpp"

namespace pagedinfer {

struct KVTransferInfo {
  DType dtype = DType::bf16;
  int32_t page_size = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim_qk = 0;
  int32_t head_dim_v = 0;
  int32_t num_layers = 0;
  int32_t num_pages = 0;
  int64_t num_tokens = 0;
  float k_scale = 1.0f;
  float v_scale = 1.0f;
  bool v_in_k = false;  // a latent cache's transfer (page_layout 1): pages carry K only
};

// Bytes of a transfer of num_tokens tokens from num_layers caches shaped like `cache`.
PAGEDINFER_API std::size_t kv_transfer_bytes(const KVCacheView& cache, int32_t num_layers, int64_t num_tokens);

// Writes the transfer of one sequence: its first num_tokens tokens, held in pages
// block_ids[0 .. ceil(num_tokens / page_size)) of every layer's cache (one page list for all
// layers, as engines allocate them), into dst.
struct ExportKVParams {
  const KVCacheView* caches = nullptr;  // [num_layers], all of one dtype and shape
  int32_t num_layers = 0;
  const int32_t* block_ids = nullptr;   // [ceil(num_tokens / page_size)]
  int64_t num_tokens = 0;               // >= 1
  void* dst = nullptr;
  std::size_t dst_bytes = 0;            // >= kv_transfer_bytes(caches[0], num_layers, num_tokens)
  int num_threads = 1;
};
PAGEDINFER_API void export_kv(const ExportKVParams& params);

// The header of a transfer, after checking its magic, version, fields, length and checksum.
PAGEDINFER_API KVTransferInfo read_kv_transfer(const void* data, std::size_t size);

// Writes a transfer's pages into pages block_ids[0 .. num_blocks) of every layer's cache, after
// the checks above; returns its header.
struct ImportKVParams {
  const KVCacheView* caches = nullptr;  // [num_layers]; any layout, same dtype / shape as the sender
  int32_t num_layers = 0;
  const void* src = nullptr;
  std::size_t src_bytes = 0;
  const int32_t* block_ids = nullptr;   // [num_blocks], unique, inside every cache's pool
  int64_t num_blocks = 0;               // must equal the transfer's num_pages
  int num_threads = 1;
};
PAGEDINFER_API KVTransferInfo import_kv(const ImportKVParams& params);

}  // namespace pagedinfer
