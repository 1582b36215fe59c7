// The portable GEMM micro-kernels, written once over xsimd and included by every ISA TU of
// src/gemm/ after its common/simd/<isa>.hpp:
//   fp32: q converted to fp32, FMA with fp32 activations (exact products), fp32 group sums.
//   int32: q times int8 activations in int32 lanes: every group sum exact, on any CPU (VNNI
//          does the same faster in x86_avx512_vnni.cpp and x86_avx2_vnni.cpp).
//   16-bit (unquantized) weights: bf16 or fp16 values made fp32 (exact), FMA with fp32
//          activations, one fp32 sum over k (no group params).
#pragma once
#include <type_traits>

#include "gemm/blocks.hpp"
#include "gemm/prepare.hpp"

namespace pagedinfer::detail {
namespace {

// Acc: float (fp32 activations) or int32_t (int8 activations). BITS 16: unquantized values of
// dtype kValues (float activations only).
template <class A, int BITS, class Acc, DType kValues = DType::bf16>
struct GenericBlock {
  static constexpr bool kSetsC = false;  // adds into a zeroed c (run_blocks)
  using F = xsimd::batch<float, A>;
  using U = xsimd::batch<uint32_t, A>;
  using Q = xsimd::batch<Acc, A>;
  using Act = std::conditional_t<std::is_same_v<Acc, float>, float, int8_t>;
  static constexpr int W = int(F::size);
  static constexpr int kVectors = int(kTile) / W;  // vectors per tile
  static constexpr int KPW = 32 / BITS;     // k per word
  static constexpr uint32_t kMask = QuantizedWeight::Storage::mask_of(BITS);
  static_assert(BITS != 16 || std::is_same_v<Acc, float>, "16-bit weights meet float activations");

  static Q element(U word, int e) {
    if constexpr (BITS == 16) {
      if constexpr (kValues == DType::bf16) return xsimd::bitwise_cast<F>(e == 0 ? word << 16 : word & U(0xffff0000u));
      else return SimdIsa<A>::f16_low(e == 0 ? word : word >> 16);
    } else {
      const U q = (word >> QuantizedWeight::Storage::shift_of(BITS, e)) & U(kMask);
      const auto i = xsimd::bitwise_cast<xsimd::batch<int32_t, A>>(q);
      if constexpr (std::is_same_v<Acc, float>) return xsimd::to_float(i);
      else return i;
    }
  }

  template <int R, int NT, int S>  // S: unused, the layout is row-major
  static void run(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    const auto& w = *j.w;
    const int64_t words_per_group = w.group / KPW;
    const Act* act[R];
    for (int r = 0; r < R; ++r) act[r] = reinterpret_cast<const Act*>(j.act.unit(m0 + r, 0));  // row-major
    for (int64_t g = 0; g < w.groups; ++g) {
      Q acc[R][NT][kVectors];
      for (auto& a : acc)
        for (auto& b : a)
          for (auto& v : b) v = Q(Acc(0));
      for (int64_t jw = g * words_per_group; jw < (g + 1) * words_per_group; ++jw)
        for (int i = 0; i < NT; ++i)
          for (int v = 0; v < kVectors; ++v) {
            const U word = U::load_unaligned(w.tile(t0 + i) + jw * kTile + v * W);
            for (int e = 0; e < KPW; ++e) {
              const Q q = element(word, e);
              for (int r = 0; r < R; ++r) acc[r][i][v] += q * Q(Acc(act[r][jw * KPW + e]));
            }
          }
      if constexpr (BITS == 16) {  // one group, no params: c = the fp32 sums
        for (int i = 0; i < NT; ++i)
          for (int v = 0; v < kVectors; ++v)
            for (int r = 0; r < R; ++r) acc[r][i][v].store_aligned(c + (r * NT + i) * kTile + v * W);
        continue;
      }
      for (int i = 0; i < NT; ++i) {
        alignas(64) float scale[kTile], offset[kTile];
        group_params(w, g, t0 + i, scale, offset);
        for (int v = 0; v < kVectors; ++v) {
          const F s = F::load_aligned(scale + v * W), o = F::load_aligned(offset + v * W);
          for (int r = 0; r < R; ++r) {
            float* cp = c + (r * NT + i) * kTile + v * W;
            F sum;
            if constexpr (std::is_same_v<Acc, float>) sum = acc[r][i][v];
            else sum = xsimd::to_float(acc[r][i][v]);
            const F updated = xsimd::fma(sum, s, F::load_aligned(cp)) + o * F(j.act_sums[(m0 + r) * w.groups + g]);
            updated.store_aligned(cp);
          }
        }
      }
    }
  }
};

// Rows per block: the block's R x 2 tiles of accumulators must fit the register file.
template <class A>
constexpr int generic_rows() {
  return xsimd::batch<float, A>::size >= 16 ? 8 : xsimd::batch<float, A>::size == 8 ? 4 : 2;
}

template <class A, DType X>
PrepareKernel generic_prepare(LinearActivations mode) {
  if (mode == LinearActivations::int8_per_token) return &Prepare<A, X>::template i8<WordOrder::natural>;
  return &Prepare<A, X>::f32;
}

template <class A>
GemmKernel generic_gemm_kernel(const GemmCase& c) {
  const QuantizedWeight::Storage& w = *c.w;
  // 16-bit weights meet float activations only (linear() refuses int8 ones).
  const LinearActivations mode = w.quantized() ? c.mode : LinearActivations::float_;
  constexpr int MR = generic_rows<A>();
  GemmKernel k;
  const bool int8 = mode == LinearActivations::int8_per_token;
  k.compute = int8 ? ComputeType::i8 : ComputeType::f32;
  k.unit = int8 ? LinearUnit::int32_vector : LinearUnit::fp32_fma;
  switch (c.x) {
    case DType::f32: k.prepare = generic_prepare<A, DType::f32>(mode); break;
    case DType::bf16: k.prepare = generic_prepare<A, DType::bf16>(mode); break;
    case DType::f16: k.prepare = generic_prepare<A, DType::f16>(mode); break;
    default: break;  // validated: activations are float types
  }
  // Two tiles per block: a gate_up weight's gate tile and its up tile meet in one block.
  if (!w.quantized())
    k.run = w.format.dtype == DType::bf16 ? &run_blocks<A, GenericBlock<A, 16, float, DType::bf16>, MR, 2>
                                          : &run_blocks<A, GenericBlock<A, 16, float, DType::f16>, MR, 2>;
  else if (w.format.bits == 4)
    k.run = int8 ? &run_blocks<A, GenericBlock<A, 4, int32_t>, MR, 2> : &run_blocks<A, GenericBlock<A, 4, float>, MR, 2>;
  else
    k.run = int8 ? &run_blocks<A, GenericBlock<A, 8, int32_t>, MR, 2> : &run_blocks<A, GenericBlock<A, 8, float>, MR, 2>;
  return k;
}

}  // namespace
}  // namespace pagedinfer::detail
