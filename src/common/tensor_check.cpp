#include "common/tensor_check.hpp"

#include <algorithm>
#include <iterator>

#include "common/check.hpp"

namespace pagedinfer::detail {

bool strides_disjoint(std::pair<int64_t, int64_t> (&dims)[4]) {
  std::sort(std::begin(dims), std::end(dims), [](auto a, auto b) { return a.second < b.second; });
  int64_t span = 1;
  for (auto [extent, stride] : dims) {
    if (extent <= 1) continue;
    if (stride < span) return false;
    if (__builtin_mul_overflow(stride, extent, &span)) return false;  // not addressable at all
  }
  return true;
}

void validate_tokens(const void* data, DType dtype, int64_t stride_token, int64_t stride_head, int64_t num_tokens,
                     int32_t num_heads, int32_t head_dim, const char* where, const char* name) {
  PAGEDINFER_CHECK(is_float_dtype(dtype), where, name, ".dtype must be f32, bf16 or f16 (", dtype_name(dtype), ")");
  if (num_tokens == 0) return;
  PAGEDINFER_CHECK(data != nullptr, where, name, ".data must not be null");
  PAGEDINFER_CHECK(aligned_to(data, dtype), where, name, ".data must be aligned to ", dtype_size(dtype), " bytes");
  if (num_heads == 1) stride_head = head_dim;  // unused
  PAGEDINFER_CHECK(stride_token > 0 && stride_head > 0, where, name, " strides must be positive (token ",
                   stride_token, ", head ", stride_head, ")");
  std::pair<int64_t, int64_t> dims[4] = {{num_tokens, stride_token}, {num_heads, stride_head}, {head_dim, 1}, {1, 1}};
  PAGEDINFER_CHECK(strides_disjoint(dims), where, name, " strides (token ", stride_token, ", head ", stride_head,
                   ") make elements of [", num_tokens, ", ", num_heads, ", ", head_dim,
                   "] overlap or exceed the address space");
  // The byte extent (tokens_extent) must fit: every product below is then free of overflow.
  int64_t last = 0, head_part = 0, bytes = 0;
  const bool fits = !__builtin_mul_overflow(num_tokens - 1, stride_token, &last) &&
                    !__builtin_mul_overflow(int64_t(num_heads - 1), stride_head, &head_part) &&
                    !__builtin_add_overflow(last, head_part + head_dim, &last) &&
                    !__builtin_mul_overflow(last, int64_t(dtype_size(dtype)), &bytes) && bytes <= (int64_t(1) << 56);
  PAGEDINFER_CHECK(fits, where, name, " [", num_tokens, ", ", num_heads, ", ", head_dim, "] with strides (token ",
                   stride_token, ", head ", stride_head, ") spans more than 2^56 bytes");
}

std::pair<uintptr_t, uintptr_t> tokens_extent(const void* data, DType dtype, int64_t stride_token,
                                              int64_t stride_head, int64_t num_tokens, int32_t num_heads,
                                              int32_t dim) {
  const int64_t last = (num_tokens - 1) * stride_token + (num_heads > 1 ? (num_heads - 1) * stride_head : 0) + dim;
  const uintptr_t first = reinterpret_cast<uintptr_t>(data);
  return {first, first + uintptr_t(last) * dtype_size(dtype)};
}

}  // namespace pagedinfer::detail
