// A quantized KV cache for tests: filled through append_kv with random fp32 rows.
#pragma once
#include <cstring>

#include "test_util.hpp"

namespace testutil {

// A quantized cache filled through append_kv with random fp32 rows, slots past each request's
// length left as NaN codes (and NaN scales): a kernel that reads them fails the comparison.
struct QuantizedBatch {
  std::mt19937 rng{11};
  pagedinfer::DType kv;
  int32_t heads, dk, dv, page;
  std::vector<int32_t> kv_len;
  Pages pages;
  Pool pool;

  QuantizedBatch(pagedinfer::DType kv_, Layout layout, std::vector<int32_t> lens, int32_t heads_, int32_t dk_, int32_t dv_,
                 int32_t page_)
      : kv(kv_), heads(heads_), dk(dk_), dv(dv_), page(page_), kv_len(std::move(lens)),
        pages(kv_len, page, Pages::pages_needed(kv_len, page) + 3, rng),
        pool(layout, kv, Pages::pages_needed(kv_len, page) + 3, page, heads, dk, dv) {
    std::memset(pool.k.data(), 0xff, pool.k.bytes());  // NaN codes (fp8), NaN scales (i8)
    if (pool.v.n) std::memset(pool.v.data(), 0xff, pool.v.bytes());
    pool.view.k_scale = 1.f / 64;
    pool.view.v_scale = layout == Layout::latent ? pool.view.k_scale : 1.f / 128;
    std::vector<int64_t> slots;
    for (std::size_t r = 0; r < kv_len.size(); ++r)
      for (int32_t j = 0; j < kv_len[r]; ++j)
        slots.push_back(int64_t(pages.page_indices[std::size_t(pages.page_indptr[r] + j / page)]) * page + j % page);
    const int64_t n = int64_t(slots.size());
    std::vector<float> k(std::size_t(n * heads * dk)), v(std::size_t(n * heads * dv));
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (float& x : k) x = u(rng);
    for (float& x : v) x = u(rng);
    pagedinfer::AppendKvParams p;
    p.cache = pool.view;
    p.key = {k.data(), pagedinfer::DType::f32, int64_t(heads) * dk, dk};
    if (layout != Layout::latent) p.value = {v.data(), pagedinfer::DType::f32, int64_t(heads) * dv, dv};
    p.slot_mapping = slots.data();
    p.num_tokens = n;
    p.num_threads = 2;
    pagedinfer::append_kv(p);
  }

  // Element d of K (v false) or V of (page, token, head), dequantized: stored value * scale.
  float at(bool v, int64_t pg, int32_t t, int32_t h, int32_t d) const {
    const pagedinfer::KVCacheView& c = pool.view;
    const pagedinfer::PagePool& p = v ? c.v : c.k;
    const uint8_t b = static_cast<const uint8_t*>(p.data)[pg * p.stride_page + t * p.stride_token + h * p.stride_head + d];
    if (kv == pagedinfer::DType::i8)
      return float(int8_t(b)) * p.scale[pg * p.scale_stride_page + t * p.scale_stride_token + h * p.scale_stride_head];
    return (kv == pagedinfer::DType::f8_e4m3 ? pagedinfer::f8_e4m3_to_float(b) : pagedinfer::f8_e5m2_to_float(b)) * (v ? c.v_scale : c.k_scale);
  }
};


}  // namespace testutil
