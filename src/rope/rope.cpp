// apply_rope and apply_rope_and_append_kv: validate, then hand tokens to the best kernel.
#include <algorithm>

#include "common/check.hpp"
#include "common/convert.hpp"
#include "common/threading.hpp"
#include "kv_cache/paged.hpp"
#include "rope/validate.hpp"

namespace pagedinfer {

namespace detail {

namespace {

// Which position stream (0 temporal, 1 height, 2 width) frequency i reads; 0 without mRoPE.
int rope_stream(const RopeParams& p, int32_t i) {
  if (!p.mrope_section) return 0;
  const int32_t* s = p.mrope_section;
  if (p.mrope_interleaved) {
    if (i % 3 == 1 && i < 3 * s[1]) return 1;
    if (i % 3 == 2 && i < 3 * s[2]) return 2;
    return 0;
  }
  return i < s[0] ? 0 : i < s[0] + s[1] ? 1 : 2;
}

}  // namespace

void rope_token_angles(const RopeJob& j, int64_t t, float* cos, float* sin) {
  const RopeParams& p = *j.params;
  const RopeTable& tb = p.table;
  const int32_t half = j.rotary_dim / 2;
  const std::size_t es = dtype_size(tb.dtype);
  // The table row of each position stream this token uses.
  const char* row[3] = {};
  for (int s = 0; s < (p.mrope_section ? 3 : 1); ++s) {
    const int64_t pos = p.positions[s * p.num_tokens + t];
    row[s] = static_cast<const char*>(tb.cos_sin) + std::size_t(pos) * std::size_t(tb.rotary_dim) * es;
  }
  if (!p.mrope_section || p.mrope_interleaved) {
    // One stream for every frequency, or a per-frequency choice (interleaved mRoPE).
    j.table_to_f32(row[0], cos, std::size_t(half));
    j.table_to_f32(row[0] + std::size_t(half) * es, sin, std::size_t(half));
    if (!p.mrope_section) return;
    for (int32_t i = 0; i < half; ++i) {
      const int s = rope_stream(p, i);
      if (s == 0) continue;
      cos[i] = load_as_float(row[s], tb.dtype, std::size_t(i));
      sin[i] = load_as_float(row[s], tb.dtype, std::size_t(half + i));
    }
    return;
  }
  // Contiguous sections: copy each stream's range.
  int32_t begin = 0;
  for (int s = 0; s < 3; ++s) {
    const int32_t n = p.mrope_section[s];
    const char* r = row[s];
    j.table_to_f32(r + std::size_t(begin) * es, cos + begin, std::size_t(n));
    j.table_to_f32(r + std::size_t(half + begin) * es, sin + begin, std::size_t(n));
    begin += n;
  }
}

}  // namespace detail

namespace {

// Fewest tokens per thread: about 16 KiB of q/k each, so that a decode batch of a few tokens still
// spreads over threads while a single token stays on one.
int64_t token_grain(const detail::RopeJob& j) {
  const int64_t token_bytes =
      int64_t(j.q.heads + j.k.heads) * j.head_dim * int64_t(dtype_size(j.q.heads ? j.q.dtype : j.k.dtype));
  return std::max<int64_t>(1, (16 << 10) / std::max<int64_t>(1, token_bytes));
}

void run(const detail::RopeJob& j, DType x, DType k_out) {
  const detail::RopeKernel kernel = detail::rope_kernel(x, k_out);
  detail::parallel_ranges(j.params->num_tokens, j.params->num_threads, token_grain(j),
                          [&](int64_t t0, int64_t t1) { kernel(j, t0, t1); });
}

}  // namespace

void apply_rope(const RopeParams& p) {
  const detail::RopeJob j = detail::validate_rope(p, "apply_rope");
  const DType x = j.q.heads ? j.q.dtype : j.k.dtype;
  run(j, x, x);
}

void apply_rope_and_append_kv(const RopeAppendKvParams& params) {
  const char* where = "apply_rope_and_append_kv";
  const RopeParams& p = params.rope;
  const KVCacheView& cache = params.cache;
  const TokensView& value = params.value;
  const int64_t* slot_mapping = params.slot_mapping;
  detail::RopeJob j = detail::validate_rope(p, where);
  detail::validate_cache(cache, where);
  PAGEDINFER_CHECK(p.num_kv_heads == cache.num_kv_heads, where, "num_kv_heads = ", p.num_kv_heads,
                   " must equal cache.num_kv_heads = ", cache.num_kv_heads);
  PAGEDINFER_CHECK(p.head_dim == cache.k.head_dim, where, "head_dim = ", p.head_dim,
                   " must equal cache.k.head_dim = ", cache.k.head_dim);
  detail::validate_value(cache, value, p.num_tokens, where);
  detail::validate_slots(cache, slot_mapping, p.num_tokens, where);
  j.cache = &cache;
  j.slot_mapping = slot_mapping;
  j.value = value;
  if (detail::is_quantized(cache)) j.quantize = detail::quantize_kv_kernel(cache.dtype);
  run(j, j.k.dtype, j.quantize ? DType::f32 : cache.dtype);
}

}  // namespace pagedinfer
