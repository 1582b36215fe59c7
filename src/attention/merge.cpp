// merge_states: combine two partial attention results over disjoint key sets.
#include <cmath>
#include <limits>

#include "common/check.hpp"
#include "common/convert.hpp"
#include "common/tensor_check.hpp"
#include "common/threading.hpp"
#include "pagedinfer/attention.hpp"

namespace pagedinfer {

void merge_states(const MergeStatesParams& p) {
  const char* where = "merge_states";
  PAGEDINFER_CHECK(p.num_tokens >= 0 && p.num_heads >= 1 && p.head_dim >= 1, where, "shape [", p.num_tokens, ", ",
                   p.num_heads, ", ", p.head_dim, "] must have num_tokens >= 0 and positive heads and head_dim");
  detail::check_num_threads(p.num_threads, where, "num_threads");
  if (p.num_tokens == 0) return;
  PAGEDINFER_CHECK(p.lse_a && p.lse_b, where, "lse_a and lse_b must not be null");
  detail::validate_tokens(p.a.data, p.a.dtype, p.a.stride_token, p.a.stride_head, p.num_tokens, p.num_heads,
                          p.head_dim, where, "a");
  detail::validate_tokens(p.b.data, p.b.dtype, p.b.stride_token, p.b.stride_head, p.num_tokens, p.num_heads,
                          p.head_dim, where, "b");
  detail::validate_tokens(p.out.data, p.out.dtype, p.out.stride_token, p.out.stride_head, p.num_tokens, p.num_heads,
                          p.head_dim, where, "out");
  // out may be a or b element for element (each row is read before it is written), never a
  // shifted view of them.
  const auto extent = [&](const void* data, DType t, int64_t st, int64_t sh) {
    return detail::tokens_extent(data, t, st, sh, p.num_tokens, p.num_heads, p.head_dim);
  };
  const auto out_extent = extent(p.out.data, p.out.dtype, p.out.stride_token, p.out.stride_head);
  for (const TokensView* in : {&p.a, &p.b}) {
    const bool same = in->data == p.out.data && in->dtype == p.out.dtype && in->stride_token == p.out.stride_token &&
                      (p.num_heads == 1 || in->stride_head == p.out.stride_head);
    PAGEDINFER_CHECK(same || !detail::extents_overlap(out_extent, extent(in->data, in->dtype, in->stride_token,
                                                                          in->stride_head)),
                     where, "out must be ", in == &p.a ? "a" : "b", " itself (same data, dtype and strides) or not overlap it");
  }
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const auto row_of = [](const auto& v, int64_t t, int32_t h) {
    return static_cast<std::size_t>(t * v.stride_token + h * v.stride_head);
  };
  detail::parallel_for(p.num_tokens * p.num_heads, p.num_threads, 64, [&](int64_t row) {
    const int64_t t = row / p.num_heads;
    const int32_t h = int32_t(row % p.num_heads);
    const float la = p.lse_a[row], lb = p.lse_b[row];
    const float m = std::max(la, lb);
    float wa = 0.f, wb = 0.f, lse = neg_inf;
    if (m != neg_inf) {
      wa = std::exp(la - m);
      wb = std::exp(lb - m);
      lse = m + std::log(wa + wb);
      const float inv = 1.f / (wa + wb);
      wa *= inv;
      wb *= inv;
    }
    const std::size_t ra = row_of(p.a, t, h), rb = row_of(p.b, t, h), ro = row_of(p.out, t, h);
    for (int32_t d = 0; d < p.head_dim; ++d) {
      const float a = detail::load_as_float(p.a.data, p.a.dtype, ra + d);
      const float b = detail::load_as_float(p.b.data, p.b.dtype, rb + d);
      detail::store_from_float(p.out.data, p.out.dtype, ro + d, wa * a + wb * b);
    }
    if (p.lse_out) p.lse_out[row] = lse;
  });
}

}  // namespace pagedinfer
