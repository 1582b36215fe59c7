// pagedinfer: RMSNorm, with a fused residual add, Gemma's (1 + w) weight and per-head QK norm.
//
// Contract. Every row x (dim elements) of a [tokens, heads, dim] tensor is normalized:
//   y[d] = x[d] / sqrt(mean_d(x[d]^2) + eps) * w'[d],    w' = w, or 1 + w with weight_plus_one
// heads = 1 for the hidden-state norms of a decoder block (dim = hidden size); heads > 1 with
// dim = head_dim for the per-head QK norm of Qwen3 / Gemma-3 (one weight of head_dim shared by
// every head).
//
// Rounding convention. x and w are read exactly; the kernel computes in fp32 (sum of squares
// accumulated in fp32 lanes) and rounds y once to the output dtype (nearest even). Hugging Face's
// Llama rounds x / rms to the input dtype before multiplying by w; our single rounding is at
// least as accurate and differs from it by at most one ulp of the storage type.
// fused_add_rms_norm first forms the new residual
//   residual[d] = round_storage(float(x[d]) + float(residual[d]))      (sum in fp32)
// and then normalizes that rounded, stored residual exactly as rms_norm would: so the fused call
// is bitwise identical to an add followed by rms_norm of the stored residual (vLLM's order).
//
// Cache behaviour: an out-of-place bf16 output of 1 MiB or more (a prompt's hidden states) is
// written with streaming stores on AVX-512, so it goes to memory rather than staying in cache;
// the values are the same. Smaller outputs (decode) are stored normally.
//
// Errors: pagedinfer::Error names the argument (null pointers, dim < 1, eps <= 0 or not finite,
// dtype mismatch between input, output and residual, overlapping strides).
#pragma once
#include <cstdint>

#include "pagedinfer/tensor.hpp"

namespace pagedinfer {

struct RmsNormParams {
  int64_t num_tokens = 0;
  int32_t num_heads = 1;               // rows per token: 1, or the head count for QK norm
  int32_t dim = 0;                     // elements normalized together: hidden size or head_dim
  TokensView input;                    // [num_tokens, num_heads, dim]
  OutTokensView output;                // [num_tokens, num_heads, dim], input's dtype; the input
                                       // itself (in place: same data and strides) or disjoint
  OutTokensView residual;              // fused_add_rms_norm only: [num_tokens, num_heads, dim],
                                       // input's dtype, disjoint from input and output
  const void* weight = nullptr;        // [dim]
  DType weight_dtype = DType::bf16;    // may differ from the activations' dtype
  float eps = 1e-6f;                   // > 0
  bool weight_plus_one = false;        // Gemma: multiply by (1 + w)
  int num_threads = 1;
};

// output = rmsnorm(input).
PAGEDINFER_API void rms_norm(const RmsNormParams& p);

// residual = round(input + residual); output = rmsnorm(residual). With output = input this is
// vLLM's in-place fused_add_rms_norm(x, residual).
PAGEDINFER_API void fused_add_rms_norm(const RmsNormParams& p);

// The registered kernel (kernels.hpp) that rms_norm runs for these dtypes, now.
PAGEDINFER_API const char* rms_norm_kernel_name(DType dtype, DType weight_dtype);

namespace reference {
// The oracle: double arithmetic, one rounding to the output dtype; same conventions and checks.
PAGEDINFER_API void rms_norm(const RmsNormParams& p);
PAGEDINFER_API void fused_add_rms_norm(const RmsNormParams& p);
}  // namespace reference

}  // namespace pagedinfer
