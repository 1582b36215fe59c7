// merge_states: combine two partial attention results over disjoint key sets.
#include <cmath>
#include <limits>

#include "common/check.hpp"
#include "common/convert.hpp"
#include "common/threading.hpp"
#include "pagedinfer/attention.hpp"

namespace pagedinfer {

void merge_states(const void* out_a, const float* lse_a, const void* out_b, const float* lse_b, void* out,
                  float* lse_out, DType dtype, int64_t num_tokens, int32_t num_heads, int32_t head_dim,
                  int num_threads) {
  const char* where = "merge_states";
  PAGEDINFER_CHECK(dtype_size(dtype) != 0, where, "dtype is not a valid DType");
  PAGEDINFER_CHECK(num_tokens >= 0 && num_heads >= 1 && head_dim >= 1, where, "shape [", num_tokens, ", ",
                   num_heads, ", ", head_dim, "] must have num_tokens >= 0 and positive heads and head_dim");
  PAGEDINFER_CHECK(num_threads >= 1, where, "num_threads = ", num_threads, " must be >= 1");
  if (num_tokens == 0) return;
  PAGEDINFER_CHECK(out_a && lse_a && out_b && lse_b && out, where,
                   "out_a, lse_a, out_b, lse_b and out must not be null");
  const std::size_t es = dtype_size(dtype);
  for (const void* ptr : {out_a, out_b, static_cast<const void*>(out)})
    PAGEDINFER_CHECK(reinterpret_cast<uintptr_t>(ptr) % es == 0, where, "tensors must be aligned to ", es,
                     " bytes (dtype ", dtype_name(dtype), ")");
  const float neg_inf = -std::numeric_limits<float>::infinity();
  detail::parallel_for(num_tokens * num_heads, num_threads, 64, [&](int64_t row) {
    const float la = lse_a[row], lb = lse_b[row];
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
    const std::size_t base = std::size_t(row) * std::size_t(head_dim);
    for (int32_t d = 0; d < head_dim; ++d) {
      const float a = detail::load_as_float(out_a, dtype, base + d), b = detail::load_as_float(out_b, dtype, base + d);
      detail::store_from_float(out, dtype, base + d, wa * a + wb * b);
    }
    if (lse_out) lse_out[row] = lse;
  });
}

}  // namespace pagedinfer
