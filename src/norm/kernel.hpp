// The contract between the RMSNorm driver (norm.cpp) and the per-ISA kernels.
#pragma once
#include <cstdint>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer::detail {

// Base and strides (elements) of a [tokens, heads, dim] operand.
struct NormOperand {
  void* data = nullptr;
  int64_t stride_token = 0, stride_head = 0;
  char* row(int64_t t, int64_t h, int64_t elem_size) const {
    return static_cast<char*>(data) + (t * stride_token + h * stride_head) * elem_size;
  }
};

// Validated rows of one call. Row r is (token r / heads, head r % heads).
struct NormRows {
  NormOperand in;        // x; for the fused op, the addend x (read only)
  NormOperand out;       // y (may equal in)
  NormOperand residual;  // fused op only: read, replaced by round(x + residual), normalized
  int64_t tokens = 0;
  int32_t heads = 1, dim = 0;
  DType dtype = DType::f32;  // of in, out and residual
  const void* weight = nullptr;  // [dim]
  DType weight_dtype = DType::f32;
  float eps = 0, weight_offset = 0;  // weight_offset 1: Gemma's (1 + w)
};

// Normalizes rows [row_begin, row_end). Activations have the kernel's dtype, the weight its own.
using NormKernel = void (*)(const NormRows& job, int64_t row_begin, int64_t row_end);

NormKernel norm_kernel(DType x, DType weight);  // dispatch.cpp: the table's choice

// One per ISA translation unit, registered in dispatch.cpp; on aarch64 only the baseline (NEON).
NormKernel norm_kernel_baseline(DType x, DType weight);
NormKernel norm_kernel_avx2(DType x, DType weight);
NormKernel norm_kernel_avx512(DType x, DType weight);

}  // namespace pagedinfer::detail
