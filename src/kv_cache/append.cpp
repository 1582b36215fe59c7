// append_kv: token rows into their cache slots, converted or quantized to the cache's dtype.
#include <cstring>

#include "common/check.hpp"
#include "common/threading.hpp"
#include "convert/kernel.hpp"
#include "kv_cache/paged.hpp"

namespace pagedinfer {

void append_kv(const AppendKvParams& p) {
  const char* where = "append_kv";
  const KVCacheView& c = p.cache;
  const TokensView &key = p.key, &value = p.value;
  const int64_t* slot_mapping = p.slot_mapping;
  const int64_t num_tokens = p.num_tokens;
  const int num_threads = p.num_threads;
  detail::validate_cache(c, where);
  PAGEDINFER_CHECK(num_tokens >= 0, where, "num_tokens = ", num_tokens, " must be >= 0");
  detail::check_num_threads(num_threads, where, "num_threads");
  detail::validate_tokens(key.data, key.dtype, key.stride_token, key.stride_head, num_tokens, c.num_kv_heads,
                          c.k.head_dim, where, "key");
  detail::validate_value(c, value, num_tokens, where);
  detail::validate_slots(c, slot_mapping, num_tokens, where);

  const std::size_t es = dtype_size(c.dtype);
  // A quantized cache: rows are converted to fp32 first, then quantized.
  const bool quantized = detail::is_quantized(c);
  const DType row_type = quantized ? DType::f32 : c.dtype;
  const detail::ConvertKernel convert_k = detail::convert_kernel(key.dtype, row_type);
  const detail::ConvertKernel convert_v = detail::convert_kernel(value.dtype, row_type);
  const detail::QuantizeRowKernel quantize = quantized ? detail::quantize_kv_kernel(c.dtype) : nullptr;
  auto write = [&](const PagePool& p, float tensor_scale, const TokensView& src, detail::ConvertKernel convert,
                   int64_t i, int64_t slot) {
    const int64_t page = slot / c.page_size, off = slot % c.page_size;
    const std::size_t src_es = dtype_size(src.dtype);
    alignas(64) float row[detail::kMaxHeadDim];
    for (int32_t h = 0; h < c.num_kv_heads; ++h) {
      const char* from = static_cast<const char*>(src.data) + (i * src.stride_token + h * src.stride_head) * src_es;
      char* to = static_cast<char*>(p.data) + detail::row_offset(p, page, off, h) * es;
      if (quantized) {
        const float* x = src.dtype == DType::f32 ? reinterpret_cast<const float*>(from) : row;
        if (src.dtype != DType::f32) convert(from, row, std::size_t(p.head_dim));
        detail::store_quantized_row(c, p, tensor_scale, quantize, page, off, h, x);
      } else if (src.dtype == c.dtype) {
        std::memcpy(to, from, std::size_t(p.head_dim) * es);
      } else {
        convert(from, to, std::size_t(p.head_dim));
      }
    }
  };
  // One token's K+V rows are small (a few KiB); hand them out in chunks.
  detail::parallel_for(num_tokens, num_threads, 16, [&](int64_t i) {
    const int64_t slot = slot_mapping[i];
    if (slot < 0) return;
    write(c.k, c.k_scale, key, convert_k, i, slot);
    if (!detail::v_in_k(c)) write(c.v, c.v_scale, value, convert_v, i, slot);
  });
}

}  // namespace pagedinfer
