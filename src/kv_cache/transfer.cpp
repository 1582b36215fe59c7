// The KV transfer format (kv_transfer.hpp): a fixed header, the layers' pages through
// gather_blocks / scatter_blocks, and the word checksum. Every check runs before import_kv
// writes anything.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/check.hpp"
#include "common/checksum.hpp"
#include "common/threading.hpp"
#include "kv_cache/paged.hpp"
#include "pagedinfer/kv_transfer.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the KV transfer format is little-endian");

namespace pagedinfer {

namespace {

constexpr char kMagic[8] = {'P', 'G', 'D', 'I', 'K', 'V', 'T', '\0'};
constexpr uint32_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 64, kChecksumBytes = 8;

struct Header {  // the wire header, field by field (no padding: 64 bytes)
  char magic[8];
  uint32_t version, dtype;
  int32_t page_size, num_kv_heads, head_dim_qk, head_dim_v, num_layers, num_pages;
  int64_t num_tokens;
  float k_scale, v_scale;
  uint32_t page_layout, reserved;
};
static_assert(sizeof(Header) == kHeaderBytes, "the header is 64 bytes");

// The shape fields that KVTransferInfo and the wire header share, copied either way.
template <class From, class To>
void copy_shape(const From& f, To& t) {
  t.page_size = f.page_size;
  t.num_kv_heads = f.num_kv_heads;
  t.head_dim_qk = f.head_dim_qk;
  t.head_dim_v = f.head_dim_v;
  t.num_layers = f.num_layers;
  t.num_pages = f.num_pages;
  t.num_tokens = f.num_tokens;
}

KVTransferInfo info_of(const KVCacheView& c, int32_t layers, int64_t tokens) {
  KVTransferInfo i;
  i.dtype = c.dtype;
  i.page_size = c.page_size;
  i.num_kv_heads = c.num_kv_heads;
  i.head_dim_qk = c.k.head_dim;
  i.head_dim_v = c.v.head_dim;
  i.num_layers = layers;
  i.num_pages = int32_t(detail::pages_for(tokens, c.page_size));
  i.num_tokens = tokens;
  i.v_in_k = detail::v_in_k(c);
  if (c.dtype == DType::f8_e4m3 || c.dtype == DType::f8_e5m2) i.k_scale = c.k_scale, i.v_scale = c.v_scale;
  return i;
}

// Bytes of one page's values and (i8) row scales, in double: the header's product may
// overflow 64 bits before it is checked against the transfer's size.
double page_bytes_exact(const KVTransferInfo& i) {
  const double rows = double(i.page_size) * double(i.num_kv_heads), pools = i.v_in_k ? 1.0 : 2.0;
  const double values = rows * double(i.head_dim_qk + (i.v_in_k ? 0 : i.head_dim_v)) * double(dtype_size(i.dtype));
  return values + (i.dtype == DType::i8 ? rows * 4.0 * pools : 0.0);
}

std::size_t page_bytes(const KVTransferInfo& i) {
  const std::size_t rows = std::size_t(i.page_size) * std::size_t(i.num_kv_heads), pools = i.v_in_k ? 1 : 2;
  return rows * std::size_t(i.head_dim_qk + (i.v_in_k ? 0 : i.head_dim_v)) * dtype_size(i.dtype) +
         (i.dtype == DType::i8 ? rows * 4 * pools : 0);
}

std::size_t total_bytes(const KVTransferInfo& i) {
  return kHeaderBytes + std::size_t(i.num_layers) * std::size_t(i.num_pages) * page_bytes(i) + kChecksumBytes;
}

// The transfer's checksum (kv_transfer.hpp): the word checksum of the header followed by each
// page's word checksum, pages layer-major. `page_sums` holds those, computed by the caller.
uint64_t combine(const uint8_t* header, const std::vector<uint64_t>& page_sums) {
  std::vector<uint8_t> bytes(kHeaderBytes + page_sums.size() * sizeof(uint64_t));
  std::memcpy(bytes.data(), header, kHeaderBytes);
  if (!page_sums.empty()) std::memcpy(bytes.data() + kHeaderBytes, page_sums.data(), page_sums.size() * sizeof(uint64_t));
  return detail::word_checksum(bytes.data(), bytes.size());
}

// Every layer's cache: valid, and shaped like the first.
void check_caches(const KVCacheView* caches, int32_t layers, const char* where) {
  PAGEDINFER_CHECK(layers >= 1, where, "num_layers = ", layers, " must be >= 1");
  PAGEDINFER_CHECK(caches != nullptr, where, "caches is null");
  for (int32_t l = 0; l < layers; ++l) {
    const KVCacheView& c = caches[l];
    detail::validate_cache(c, where);
    const KVCacheView& f = caches[0];
    PAGEDINFER_CHECK(c.dtype == f.dtype && c.page_size == f.page_size && c.num_kv_heads == f.num_kv_heads &&
                         c.k.head_dim == f.k.head_dim && c.v.head_dim == f.v.head_dim &&
                         detail::v_in_k(c) == detail::v_in_k(f),
                     where, "caches[", l, "] differs from caches[0] in dtype, page size, heads, head dims or in",
                     " having V inside K");
  }
}

}  // namespace

std::size_t kv_transfer_bytes(const KVCacheView& cache, int32_t num_layers, int64_t num_tokens) {
  const char* where = "kv_transfer_bytes";
  detail::validate_cache(cache, where);
  PAGEDINFER_CHECK(num_layers >= 1, where, "num_layers = ", num_layers, " must be >= 1");
  PAGEDINFER_CHECK(num_tokens >= 1 && detail::pages_for(num_tokens, cache.page_size) <= INT32_MAX, where,
                   "num_tokens = ", num_tokens, " must be >= 1 and fit 2^31 - 1 pages");
  return total_bytes(info_of(cache, num_layers, num_tokens));
}

void export_kv(const ExportKVParams& p) {
  const char* where = "export_kv";
  check_caches(p.caches, p.num_layers, where);
  detail::check_num_threads(p.num_threads, where, "num_threads");
  const std::size_t bytes = kv_transfer_bytes(p.caches[0], p.num_layers, p.num_tokens);
  PAGEDINFER_CHECK(p.dst != nullptr, where, "dst is null");
  PAGEDINFER_CHECK(p.dst_bytes >= bytes, where, "dst_bytes = ", p.dst_bytes, " is smaller than the transfer's ",
                   bytes, " bytes (kv_transfer_bytes)");
  const KVTransferInfo info = info_of(p.caches[0], p.num_layers, p.num_tokens);
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  h.version = kVersion;
  h.dtype = uint32_t(info.dtype);
  copy_shape(info, h);
  h.k_scale = info.k_scale;
  h.v_scale = info.v_scale;
  h.page_layout = info.v_in_k ? 1 : 0;
  const int64_t pages = info.num_pages;
  PAGEDINFER_CHECK(p.block_ids != nullptr, where, "block_ids is null");
  for (int64_t i = 0; i < pages; ++i)  // before the parallel loop, which must not throw
    for (int32_t l = 0; l < p.num_layers; ++l)
      PAGEDINFER_CHECK(p.block_ids[i] >= 0 && p.block_ids[i] < p.caches[l].num_pages, where, "block_ids[", i,
                       "] = ", p.block_ids[i], " is outside [0, ", p.caches[l].num_pages, ") of caches[", l, "]");
  auto* out = static_cast<uint8_t*>(p.dst);
  std::memcpy(out, &h, kHeaderBytes);
  // Each page is gathered and checksummed while it is in cache.
  const std::size_t bytes_per_page = page_bytes(info);
  std::vector<uint64_t> sums(std::size_t(p.num_layers * pages));
  detail::parallel_for(p.num_layers * pages, p.num_threads, 4, [&](int64_t i) {
    uint8_t* page = out + kHeaderBytes + std::size_t(i) * bytes_per_page;
    detail::gather_page(p.caches[i / pages], p.block_ids[i % pages], page);
    sums[std::size_t(i)] = detail::word_checksum(page, bytes_per_page);
  });
  const uint64_t sum = combine(out, sums);
  std::memcpy(out + bytes - kChecksumBytes, &sum, kChecksumBytes);
}

namespace {

// read_kv_transfer, with errors in the name of the API call `where`.
KVTransferInfo parse(const void* data, std::size_t size, const char* where, int num_threads) {
  PAGEDINFER_CHECK(data != nullptr || size == 0, where, "data is null");
  PAGEDINFER_CHECK(size >= kHeaderBytes + kChecksumBytes, where, "the transfer is truncated: ", size,
                   " bytes, less than its header and checksum");
  Header h;
  std::memcpy(&h, data, kHeaderBytes);
  PAGEDINFER_CHECK(std::memcmp(h.magic, kMagic, sizeof(kMagic)) == 0, where, "not a pagedinfer KV transfer (bad magic)");
  PAGEDINFER_CHECK(h.version == kVersion, where, "format version ", h.version, " is not supported (this library reads ",
                   kVersion, ")");
  PAGEDINFER_CHECK(h.dtype <= uint32_t(DType::i8), where, "dtype = ", h.dtype, " is not a DType");
  PAGEDINFER_CHECK(h.page_layout <= 1 && h.reserved == 0, where, "page_layout = ", h.page_layout,
                   " must be 0 or 1 and reserved = ", h.reserved, " 0");
  PAGEDINFER_CHECK(h.page_layout == 0 || h.head_dim_v <= h.head_dim_qk, where, "page_layout 1 (V inside K) needs ",
                   "head_dim_v = ", h.head_dim_v, " <= head_dim_qk = ", h.head_dim_qk);
  PAGEDINFER_CHECK(h.page_size >= 1 && h.num_kv_heads >= 1 && h.num_layers >= 1, where,
                   "page_size, num_kv_heads and num_layers must be >= 1");
  for (int32_t d : {h.head_dim_qk, h.head_dim_v})
    PAGEDINFER_CHECK(d >= 8 && d <= detail::kMaxHeadDim && d % 8 == 0, where, "head dim ", d,
                     " must be a multiple of 8 in [8, ", detail::kMaxHeadDim, "]");
  PAGEDINFER_CHECK(h.num_tokens >= 1 && h.num_pages == detail::pages_for(h.num_tokens, h.page_size), where,
                   "num_pages = ", h.num_pages, " does not hold num_tokens = ", h.num_tokens, " in pages of ",
                   h.page_size);
  const bool fp8 = h.dtype == uint32_t(DType::f8_e4m3) || h.dtype == uint32_t(DType::f8_e5m2);
  if (fp8)
    PAGEDINFER_CHECK(std::isfinite(h.k_scale) && h.k_scale > 0.f && std::isfinite(h.v_scale) && h.v_scale > 0.f, where,
                     "k_scale = ", h.k_scale, " and v_scale = ", h.v_scale, " must be finite and > 0 (fp8)");
  else
    PAGEDINFER_CHECK(h.k_scale == 1.0f && h.v_scale == 1.0f, where, "k_scale = ", h.k_scale, " and v_scale = ",
                     h.v_scale, " must be 1 for a cache without per-tensor scales");
  KVTransferInfo info;
  info.dtype = DType(h.dtype);
  copy_shape(h, info);
  info.v_in_k = h.page_layout == 1;
  info.k_scale = h.k_scale;
  info.v_scale = h.v_scale;
  // In double first: the header's product may overflow 64 bits; sizes in memory are exact there.
  const double expected = double(kHeaderBytes) + double(kChecksumBytes) +
                          double(info.num_layers) * double(info.num_pages) * page_bytes_exact(info);
  PAGEDINFER_CHECK(expected == double(size) && total_bytes(info) == size, where, "the transfer is ", size,
                   " bytes; its header implies ", expected, " (truncated, or extra bytes)");
  const auto* bytes = static_cast<const uint8_t*>(data);
  uint64_t stored;
  std::memcpy(&stored, bytes + size - kChecksumBytes, kChecksumBytes);
  const std::size_t bytes_per_page = page_bytes(info), pages = std::size_t(info.num_layers) * std::size_t(info.num_pages);
  std::vector<uint64_t> sums(pages);
  detail::parallel_for(int64_t(pages), num_threads, 4, [&](int64_t i) {
    sums[std::size_t(i)] = detail::word_checksum(bytes + kHeaderBytes + std::size_t(i) * bytes_per_page, bytes_per_page);
  });
  PAGEDINFER_CHECK(stored == combine(bytes, sums), where,
                   "checksum mismatch: the transfer is corrupt");
  return info;
}

}  // namespace

KVTransferInfo read_kv_transfer(const void* data, std::size_t size) {
  return parse(data, size, "read_kv_transfer", 1);
}

KVTransferInfo import_kv(const ImportKVParams& p) {
  const char* where = "import_kv";
  check_caches(p.caches, p.num_layers, where);
  detail::check_num_threads(p.num_threads, where, "num_threads");
  const KVTransferInfo info = parse(p.src, p.src_bytes, where, p.num_threads);
  const KVCacheView& c = p.caches[0];
  PAGEDINFER_CHECK(info.num_layers == p.num_layers, where, "the transfer has ", info.num_layers,
                   " layers; num_layers = ", p.num_layers);
  PAGEDINFER_CHECK(info.dtype == c.dtype, where, "the transfer holds ", dtype_name(info.dtype), "; the caches are ",
                   dtype_name(c.dtype));
  PAGEDINFER_CHECK(info.page_size == c.page_size, where, "the transfer's page_size = ", info.page_size,
                   "; the caches' = ", c.page_size);
  PAGEDINFER_CHECK(info.num_kv_heads == c.num_kv_heads && info.head_dim_qk == c.k.head_dim &&
                       info.head_dim_v == c.v.head_dim,
                   where, "the transfer's heads x dims (", info.num_kv_heads, " x ", info.head_dim_qk, " / ",
                   info.head_dim_v, ") differ from the caches' (", c.num_kv_heads, " x ", c.k.head_dim, " / ",
                   c.v.head_dim, ")");
  PAGEDINFER_CHECK(info.v_in_k == detail::v_in_k(c), where, info.v_in_k ? "the transfer is of a latent cache (V inside K); the caches are not"
                                                                         : "the caches are latent (V inside K); the transfer is not");
  const bool fp8 = c.dtype == DType::f8_e4m3 || c.dtype == DType::f8_e5m2;
  PAGEDINFER_CHECK(!fp8 || (info.k_scale == c.k_scale && info.v_scale == c.v_scale), where,
                   "the transfer's fp8 scales (", info.k_scale, ", ", info.v_scale, ") differ from the caches' (",
                   c.k_scale, ", ", c.v_scale, "): its values would be misread");
  PAGEDINFER_CHECK(p.num_blocks == info.num_pages, where, "num_blocks = ", p.num_blocks, "; the transfer has ",
                   info.num_pages, " pages");
  PAGEDINFER_CHECK(p.block_ids != nullptr, where, "block_ids is null");
  int64_t smallest_pool = c.num_pages;
  for (int32_t l = 1; l < p.num_layers; ++l) smallest_pool = std::min(smallest_pool, p.caches[l].num_pages);
  std::vector<uint8_t> seen(std::size_t(smallest_pool), 0);
  for (int64_t i = 0; i < p.num_blocks; ++i) {
    const int32_t id = p.block_ids[i];
    PAGEDINFER_CHECK(id >= 0 && id < smallest_pool, where, "block_ids[", i, "] = ", id, " is outside [0, ",
                     smallest_pool, ")");
    PAGEDINFER_CHECK(!seen[std::size_t(id)], where, "block_ids[", i, "] = ", id, " appears twice");
    seen[std::size_t(id)] = 1;
  }
  const auto* pages = static_cast<const uint8_t*>(p.src) + kHeaderBytes;
  const std::size_t layer_bytes = std::size_t(info.num_pages) * page_bytes(info);
  for (int32_t l = 0; l < p.num_layers; ++l)
    scatter_blocks({p.caches[l], pages + std::size_t(l) * layer_bytes, p.block_ids, p.num_blocks, p.num_threads});
  return info;
}

}  // namespace pagedinfer
