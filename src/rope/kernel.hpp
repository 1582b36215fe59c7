// The contract between the RoPE driver (rope.cpp) and the per-ISA kernels.
#pragma once
#include <cstdint>

#include "convert/kernel.hpp"
#include "quantize_kv/kernel.hpp"
#include "pagedinfer/rope.hpp"

namespace pagedinfer::detail {

// Largest rotary_dim: the kernels keep one token's cos/sin rows on the stack.
constexpr int32_t kMaxRotaryDim = 1024;

// Heads of one token tensor; heads == 0 means absent. Strides in elements.
struct RopeOperand {
  void* data = nullptr;
  DType dtype = DType::f32;
  int64_t stride_token = 0, stride_head = 0;
  int32_t heads = 0;
  char* row(int64_t t, int64_t h) const {
    return static_cast<char*>(data) + (t * stride_token + h * stride_head) * int64_t(dtype_size(dtype));
  }
};

// A validated call. Without a cache, q and k rotate in place. With one (fused append), q rotates
// in place, k is only read and its rotation goes to the cache slot of each token, with value.
struct RopeJob {
  const RopeParams* params = nullptr;  // positions, table, mRoPE sections, style
  int32_t rotary_dim = 0, rotary_offset = 0, head_dim = 0;
  RopeOperand q, k;
  const KVCacheView* cache = nullptr;
  const int64_t* slot_mapping = nullptr;
  TokensView value;
  ConvertKernel table_to_f32 = nullptr;  // the table's rows to fp32, picked once per call
  QuantizeRowKernel quantize = nullptr;  // a quantized cache's rows: written as fp32, then quantized
};

// Token t's fp32 c_i and s_i (i < rotary_dim / 2), mRoPE streams resolved. Baseline code that
// the kernels call once per token.
void rope_token_angles(const RopeJob& job, int64_t t, float* cos, float* sin);

// Processes tokens [t0, t1). q/k have the kernel's dtype X; K rows are written in dtype C
// (C == X in place; the cache's dtype when fused, f32 for a quantized cache).
using RopeKernel = void (*)(const RopeJob& job, int64_t t0, int64_t t1);

RopeKernel rope_kernel(DType x, DType k_out);  // dispatch.cpp: the table's choice

// One per ISA translation unit, registered in dispatch.cpp; on aarch64 only the baseline (NEON).
RopeKernel rope_kernel_baseline(DType x, DType k_out);
RopeKernel rope_kernel_avx2(DType x, DType k_out);
RopeKernel rope_kernel_avx512(DType x, DType k_out);

}  // namespace pagedinfer::detail
