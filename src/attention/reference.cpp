// The oracle: dense gather of each request's pages, then the contract of attention.hpp
// evaluated in double, one row at a time, with no tiling and no online softmax.
#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "attention/validate.hpp"
#include "common/convert.hpp"
#include "kv_cache/paged.hpp"

namespace pagedinfer::reference {

namespace {

// [kv_len, head_dim] of one KV head, read through the page table and dequantized, in double.
std::vector<double> gather_head(const KVCacheView& c, const PagePool& pool, const int32_t* pages, int32_t kv_len,
                                int32_t head) {
  std::vector<double> dense(std::size_t(kv_len) * pool.head_dim);
  for (int32_t j = 0; j < kv_len; ++j) {
    const int64_t off = detail::row_offset(pool, pages[j / c.page_size], j % c.page_size, head);
    const double scale = detail::kv_scale(c, &pool == &c.v, pages[j / c.page_size], j % c.page_size, head);
    for (int32_t d = 0; d < pool.head_dim; ++d)
      dense[std::size_t(j) * pool.head_dim + d] =
          double(detail::load_as_float(pool.data, c.dtype, std::size_t(off + d))) * scale;
  }
  return dense;
}

// Element (i, j) of request r's custom mask (attention.hpp); true without a mask.
bool mask_allows(const AttentionParams& p, int32_t r, int64_t i, int64_t j) {
  if (!p.custom_mask) return true;
  const int64_t k = i * p.pages.kv_len[r] + j;
  const uint8_t* seg = p.custom_mask + p.mask_indptr[r];
  return p.mask_packed ? ((seg[k / 8] >> (k % 8)) & 1) != 0 : seg[k] != 0;
}

bool visible(const AttentionParams& p, int64_t pos, int64_t j) {
  if (p.causal && j > pos) return false;
  if (p.window_left >= 0 && j < pos - p.window_left) return false;
  if (!p.causal && p.window_right >= 0 && j > pos + p.window_right) return false;
  return true;
}

}  // namespace

void paged_attention(const AttentionParams& p) {
  detail::validate_attention_params(p, "reference::paged_attention");
  const KVCacheView& c = p.cache;
  const int32_t group = p.num_q_heads / c.num_kv_heads, dq = c.k.head_dim, dv = c.v.head_dim;
  const std::size_t q_es = dtype_size(p.q.dtype), o_es = dtype_size(p.out.dtype);
  for (int32_t r = 0; r < p.pages.num_reqs; ++r) {
    const int32_t kv_len = p.pages.kv_len[r], q_len = p.q_indptr[r + 1] - p.q_indptr[r];
    const int32_t* pages = detail::request_pages(p.pages, r);
    for (int32_t g = 0; g < c.num_kv_heads; ++g) {
      const std::vector<double> k = gather_head(c, c.k, pages, kv_len, g);
      const std::vector<double> v = gather_head(c, c.v, pages, kv_len, g);
      for (int32_t i = 0; i < q_len; ++i)
        for (int32_t h = g * group; h < (g + 1) * group; ++h) {
          const int64_t token = p.q_indptr[r] + i, pos = int64_t(kv_len) - q_len + i;
          const char* q = static_cast<const char*>(p.q.data) + (token * p.q.stride_token + h * p.q.stride_head) * q_es;
          std::vector<double> s(std::size_t(kv_len), -std::numeric_limits<double>::infinity());
          double m = p.sinks ? double(p.sinks[h]) : -std::numeric_limits<double>::infinity();
          for (int32_t j = 0; j < kv_len; ++j) {
            if (!visible(p, pos, j) || !mask_allows(p, r, i, j)) continue;
            double dot = 0;
            for (int32_t d = 0; d < dq; ++d)
              dot += double(detail::load_as_float(q, p.q.dtype, std::size_t(d))) * k[std::size_t(j) * dq + d];
            double x = double(p.scale) * dot;
            if (p.softcap > 0.f) x = p.softcap * std::tanh(x / p.softcap);
            if (p.alibi_slopes) x -= double(p.alibi_slopes[h]) * double(std::llabs(pos - j));
            s[std::size_t(j)] = x;
            m = std::max(m, x);
          }
          double z = p.sinks ? std::exp(double(p.sinks[h]) - m) : 0.0;
          std::vector<double> o(std::size_t(dv), 0.0);
          for (int32_t j = 0; j < kv_len; ++j) {
            if (s[std::size_t(j)] == -std::numeric_limits<double>::infinity()) continue;
            const double w = std::exp(s[std::size_t(j)] - m);
            z += w;
            for (int32_t d = 0; d < dv; ++d) o[std::size_t(d)] += w * v[std::size_t(j) * dv + d];
          }
          char* out = static_cast<char*>(p.out.data) + (token * p.out.stride_token + h * p.out.stride_head) * o_es;
          for (int32_t d = 0; d < dv; ++d)
            detail::store_from_float(out, p.out.dtype, std::size_t(d), z > 0 ? float(o[std::size_t(d)] / z) : 0.f);
          if (p.lse)
            p.lse[token * p.num_q_heads + h] = z > 0 ? float(m + std::log(z)) : -std::numeric_limits<float>::infinity();
        }
    }
  }
}

}  // namespace pagedinfer::reference
