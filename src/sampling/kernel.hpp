// The contract between the sample() driver (sample.cpp) and the per-ISA kernels: the passes
// over a request's vocabulary, vectorized; the driver runs the rules of sampling.hpp on them.
#pragma once
#include <cstdint>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer::detail {

// Weights are summed in blocks of this many values (block_weights), so that a draw finds its
// block from the sums and scans only that block.
constexpr int64_t kWeightBlock = 1024;
// load_scaled() reports the maximum of every block of this many values: k of them are k distinct
// values, so their k-th largest bounds the k-th largest of all from below (top-k's filter).
constexpr int64_t kMaxBlock = 256;

struct SamplingKernel {
  // out[i] = x[i] / divisor (fp32 division; x of `dtype`, read exactly) for i < n (out null:
  // not stored); *max = the largest; block_max[b] (unless null) the largest of block b of
  // kMaxBlock. Returns the first i whose x is NaN or +inf, or -1.
  int64_t (*load_scaled)(const void* x, DType dtype, int64_t n, float divisor, float* out, float* max,
                         float* block_max);
  float (*max)(const float* v, int64_t n);
  // The indices i < n with v[i] >= t, ascending, into out; returns their count.
  int64_t (*select_at_least)(const float* v, int64_t n, float t, int32_t* out);
  // w[i] = v[i] >= floor ? exp(v[i] - shift) : 0, in fp32, for i < n.
  void (*weights)(const float* v, int64_t n, float shift, float floor, float* w);
  // sums[b] = the fp32 sum of those weights over [b * kWeightBlock, (b + 1) * kWeightBlock) ∩ [0, n);
  // each weight is the value weights() gives.
  void (*block_weights)(const float* v, int64_t n, float shift, float floor, float* sums);
};

SamplingKernel sampling_kernel();  // dispatch.cpp: the table's choice

// One per ISA translation unit, registered in dispatch.cpp; on aarch64 only the baseline (NEON).
SamplingKernel sampling_kernel_baseline();
SamplingKernel sampling_kernel_avx2();
SamplingKernel sampling_kernel_avx512();

}  // namespace pagedinfer::detail
