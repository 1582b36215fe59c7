// pagedinfer: linear layers on packed weights, part 2: y = x W^T (+ bias) (+ residual).
//
// x is [m, k], y is [m, n_out], W a QuantizedWeight [n, k] (quant.hpp); m may be anything from 1
// (decode) to thousands (prefill), n and k anything the weight allows.
//
// Compute types, chosen by `activations`:
//   float (W8A16, W4A16)  products of x and q are exact in fp32; each group's sum is accumulated
//       in fp32 and scaled once: y = sum_g s[g] * sum_{k in g} q * x + offset[g] * sum_{k in g} x,
//       offset = -s * z (or m). bf16 x runs on bf16 dot products (AVX512-BF16) or AMX bf16
//       tiles (from 2 rows) where present, fp32 and fp16 x on fp32 FMA.
//       One row (m = 1) on Intel cores with AVX512-VNNI (where bf16 dot products are slow) runs
//       on VNNI in fixed point instead (the avx512_fixed_point kernel, kernels.hpp): x becomes X = round(x * 2^(30 - e)) (ties to
//       even), max|x| < 2^e (e >= -96), in four int8 limbs; each group's sum of q * X is exact
//       int32 per limb, joined in fp32, then scaled as above and by 2^(e - 30) last. So x is
//       exact where its lowest bit is at least 2^(e - 30) (bf16 x within 22 binades of the row's
//       maximum, fp16 within 19, fp32 within 6), and otherwise off by at most 2^(e - 31): the
//       bound above gains 2^(e - 31) * sum_k (|s q| + |offset|). A non-finite x makes the row NaN.
//   float with unquantized weights (W16A16, QuantFormat::unquantized): bf16 or fp16 weights meet
//       x in exact fp32 products with one fp32 sum over k: bf16 dot products (AVX512-BF16) for bf16
//       x and bf16 weights, fp32 FMA otherwise. The bound is that of one group of length k with
//       scale 1 and offset 0. Not on AMX tiles yet.
//   int8_per_token (W8A8, W4A8)  each row of x is quantized dynamically: a = round(x * (127 /
//       max|x|)) (fp32, ties to even; max|x| itself gives +-127, a non-finite value 0), scale
//       max|x| / 127; the group sums of q * a are exact int32
//       (AVX512-VNNI or AVX-VNNI, or AMX int8 tiles from 9 rows, 5 for int4 weights, where
//       present; widened int32 products elsewhere); groups are combined in fp32 as above and the
//       row scale applied last. 4- and 8-bit weights only.
// Which kernel runs a call: linear_kernel_name() below, the table in src/gemm/dispatch.cpp.
//
// Epilogues, in this order, without another pass over y: + bias[n]; for a gate_up weight,
// SiLU(gate) * up (n_out = n / 2); + residual (after the activation; it may be y itself, as in
// `hidden += o_proj(attn)`). The result is rounded once to y's dtype.
//
// AMX tile state: a call that runs on AMX tiles loads its own tile configuration (ldtilecfg) on
// entry, on each of its threads, and releases the tiles (tilerelease) before it returns, as
// oneDNN does. So a caller's own tile configuration does not survive a linear() call made on
// the same thread: code that keeps tiles configured across foreign calls must reconfigure after.
//
// Plan-free: workspace_size() gives the bytes the call needs for a given (weight, m, dtype,
// mode); the caller owns that memory and linear() allocates nothing. Calls are independent: two
// threads may run linear() at once on the same weight with different workspaces.
#pragma once
#include <cstddef>
#include <cstdint>

#include "pagedinfer/quant.hpp"
#include "pagedinfer/tensor.hpp"

namespace pagedinfer {

enum class LinearActivations : int32_t { float_ = 0, int8_per_token = 1 };

// Matrices are token tensors with one head (tensor.hpp): row r at data + r * stride_token
// elements; stride_head is not used.
struct LinearParams {
  int64_t m = 0;              // rows of x and y
  int64_t k = 0;              // columns of x: must equal the weight's k
  TokensView x;               // [m, k]
  OutTokensView y;            // [m, n_out]; may not overlap x
  TokensView residual;        // optional [m, n_out] in y's dtype; may be y itself (same data and stride)
  const void* bias = nullptr;  // [n] in the weight's row order, or null; dtype bias_dtype
  DType bias_dtype = DType::f32;
  LinearActivations activations = LinearActivations::float_;
  bool silu_mul = false;       // gate_up weights only: y = SiLU(gate) * up, n_out = n / 2
  int num_threads = 1;
  void* workspace = nullptr;   // workspace_bytes >= linear_workspace_size(...), 64-byte aligned
  std::size_t workspace_bytes = 0;
};

// Output columns of a call: n, or n / 2 with silu_mul.
PAGEDINFER_API int64_t linear_out_features(const QuantizedWeight& w, const LinearParams& p);
// Bytes of workspace linear() needs for this weight and these parameters (uses m, x_dtype,
// activations and num_threads only).
PAGEDINFER_API std::size_t linear_workspace_size(const QuantizedWeight& w, const LinearParams& p);
PAGEDINFER_API void linear(const QuantizedWeight& w, const LinearParams& p);

// The arithmetic linear() runs these parameters on, on this CPU at the active ISA level
// (active_isa()): for reports, and for choosing the peak a benchmark compares against.
enum class LinearUnit : int32_t {
  fp32_fma = 0,  // fp32 FMA (fp32 / fp16 x, or CPUs without bf16 dot products)
  int32_vector,  // int8 activations on widened int32 vector products (no VNNI)
  bf16_dot,      // vdpbf16ps (AVX512-BF16)
  int8_dot,      // vpdpbusd (AVX512-VNNI), also one row of fixed-point float x
  amx_bf16,      // AMX tdpbf16ps
  amx_int8,      // AMX tdpbsud
};
PAGEDINFER_API LinearUnit linear_unit(const QuantizedWeight& w, const LinearParams& p);
PAGEDINFER_API const char* linear_unit_name(LinearUnit u);
// The registered kernel (kernels.hpp) that linear() runs these parameters on, now.
PAGEDINFER_API const char* linear_kernel_name(const QuantizedWeight& w, const LinearParams& p);

namespace reference {
// The oracle: dequantize() in double, double sums, the same activation quantization rule and
// epilogues, one rounding to y's dtype. Ignores workspace and threads.
PAGEDINFER_API void linear(const QuantizedWeight& w, const LinearParams& p);
// Quantizes one row like int8_per_token: returns the scale; a[k] in [-127, 127].
PAGEDINFER_API float quantize_activation_row(const void* x, DType dtype, int64_t k, int8_t* a);
}  // namespace reference

}  // namespace pagedinfer
