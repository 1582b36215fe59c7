// Validation helpers for strided tensors, shared by every op's argument checks.
#pragma once
#include <cstdint>
#include <utility>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer::detail {

inline bool aligned_to(const void* p, DType t) { return reinterpret_cast<uintptr_t>(p) % dtype_size(t) == 0; }

// True when the elements addressed by (extent, stride) pairs never coincide: sorted by stride,
// each stride must step over the whole span of the dimensions below it.
bool strides_disjoint(std::pair<int64_t, int64_t> (&dims)[4]);

// Throws unless the [tokens, heads, dim] tensor is usable: valid dtype, non-null and aligned
// data, positive strides whose elements do not overlap. `name` is the argument's name in
// messages. With num_heads == 1 the head stride is not used and may be anything.
void validate_tokens(const void* data, DType dtype, int64_t stride_token, int64_t stride_head, int64_t num_tokens,
                     int32_t num_heads, int32_t head_dim, const char* where, const char* name);

// Byte range [first, last) spanned by a validated [tokens, heads, dim] tensor (tokens >= 1).
std::pair<uintptr_t, uintptr_t> tokens_extent(const void* data, DType dtype, int64_t stride_token,
                                              int64_t stride_head, int64_t num_tokens, int32_t num_heads,
                                              int32_t dim);

inline bool extents_overlap(std::pair<uintptr_t, uintptr_t> a, std::pair<uintptr_t, uintptr_t> b) {
  return a.first < b.second && b.first < a.second;
}

}  // namespace pagedinfer::detail
