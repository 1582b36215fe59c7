// pagedinfer: views of token tensors shared by every op family.
//
// A token tensor is [tokens, heads, dim] with unit stride along dim and strides in elements,
// so packed activations, one slice of a fused QKV buffer and padded rows are all viewed in
// place. The view does not own its data.
#pragma once
#include <cstdint>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer {

// Read-only [tokens, heads, dim] tensor.
struct TokensView {
  const void* data = nullptr;
  DType dtype = DType::bf16;
  int64_t stride_token = 0;
  int64_t stride_head = 0;
};

// Writable [tokens, heads, dim] tensor; also readable as a TokensView.
struct OutTokensView {
  void* data = nullptr;
  DType dtype = DType::bf16;
  int64_t stride_token = 0;
  int64_t stride_head = 0;
  operator TokensView() const { return {data, dtype, stride_token, stride_head}; }
};

}  // namespace pagedinfer
