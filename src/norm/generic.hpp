// RMSNorm kernel body, written once over xsimd::batch<float, A>; included by each ISA TU of
// src/norm/ after its common/simd/<isa>.hpp. Follows the rounding convention of norm.hpp.
#pragma once
#include <algorithm>
#include <cmath>

#include "common/dtype_dispatch.hpp"
#include "common/simd/load.hpp"
#include "norm/kernel.hpp"

namespace pagedinfer::detail {
namespace {

template <class A, DType X, DType WT>
struct NormKernelBody {
  using B = xsimd::batch<float, A>;
  static constexpr int64_t W = B::size;
  // Four independent accumulators hide the FMA latency of the sum of squares.
  static constexpr int64_t kUnroll = 4;
  static constexpr int64_t kElem = X == DType::f32 ? 4 : 2;

  // Sum of squares of a row, fp32 lanes: four vector accumulators, then the scalar tail.
  // pf (optional): a row to prefetch alongside, chunk by chunk.
  static float sum_squares(const void* x, int64_t n, const char* pf) {
    B acc[kUnroll] = {B(0.f), B(0.f), B(0.f), B(0.f)};
    int64_t d = 0;
    for (; d + kUnroll * W <= n; d += kUnroll * W) {
      if (pf) prefetch_bytes(pf + d * kElem, kUnroll * W * kElem);
      for (int u = 0; u < kUnroll; ++u) {
        const B v = load_as<A, X>(x, d + u * W);
        acc[u] = xsimd::fma(v, v, acc[u]);
      }
    }
    for (; d + W <= n; d += W) {
      const B v = load_as<A, X>(x, d);
      acc[0] = xsimd::fma(v, v, acc[0]);
    }
    float tail = 0.f;
    for (; d < n; ++d) {
      const float v = scalar_as<X>(x, d);
      tail = std::fma(v, v, tail);
    }
    return xsimd::hadd((acc[0] + acc[1]) + (acc[2] + acc[3])) + tail;
  }

  // residual = round(x + residual), in place.
  static void add_residual(const void* x, void* residual, int64_t n, const char* pf_x, const char* pf_res) {
    int64_t d = 0;
    for (; d + W <= n; d += W) {
      if (pf_res && d % (64 / kElem) == 0) {  // one line of each row per 64 bytes walked
        prefetch_bytes(pf_x + d * kElem, 64);
        prefetch_bytes(pf_res + d * kElem, 64);
      }
      store_as<A, X>(residual, d, load_as<A, X>(x, d) + load_as<A, X>(residual, d));
    }
    for (; d < n; ++d) store_scalar_as<X>(residual, d, scalar_as<X>(x, d) + scalar_as<X>(residual, d));
  }

  // out = x * inv_rms * (w + offset).
  // stream: write whole 64-byte lines past the caches where the row allows (see run()).
  static void scale(const void* x, void* out, const void* w, float inv_rms, float offset, int64_t n, bool stream) {
    const B r(inv_rms), o(offset);
    int64_t d = 0;
    if constexpr (kCanStream) {
      if (stream && reinterpret_cast<uintptr_t>(out) % 64 == 0)
        for (; d + 2 * W <= n; d += 2 * W)
          SimdIsa<A>::stream_bf16x2(static_cast<uint16_t*>(out) + d, (load_as<A, X>(x, d) * r) * (load_as<A, WT>(w, d) + o),
                                    (load_as<A, X>(x, d + W) * r) * (load_as<A, WT>(w, d + W) + o));
    }
    for (; d + W <= n; d += W)
      store_as<A, X>(out, d, (load_as<A, X>(x, d) * r) * (load_as<A, WT>(w, d) + o));
    for (; d < n; ++d) store_scalar_as<X>(out, d, (scalar_as<X>(x, d) * inv_rms) * (scalar_as<WT>(w, d) + offset));
  }

  static void row(const NormRows& j, int64_t t, int64_t h, const char* pf_in, const char* pf_res, bool stream) {
    const char* in = j.in.row(t, h, kElem);
    const void* src = in;
    if (j.residual.data) {
      char* res = j.residual.row(t, h, kElem);
      add_residual(in, res, j.dim, pf_in, pf_res);
      src = res;  // the stored, rounded sum is what gets normalized
      pf_in = nullptr;
    }
    const float inv_rms = 1.0f / std::sqrt(sum_squares(src, j.dim, pf_in) / float(j.dim) + j.eps);
    scale(src, j.out.row(t, h, kElem), j.weight, inv_rms, j.weight_offset, j.dim, stream);
  }

  // Rows are walked as (token, head) pairs: no division per row, which QK norm's short rows feel.
  // The row about kAheadBytes further on is prefetched meanwhile, a line per line walked (the
  // hardware prefetchers alone keep one stream per core well below the bandwidth).
  static constexpr int64_t kAheadBytes = 8 << 10;
  //
  // A large out-of-place bf16 output (kStreamBytes or more in the call) is written with streaming
  // stores: a normal store first reads each output line from DRAM (write-allocate), a third
  // stream of traffic. Small outputs (decode) stay in cache for the next op.
  static constexpr bool kCanStream = X == DType::bf16 && has_stream_bf16x2<SimdIsa<A>>::value;
  static constexpr int64_t kStreamBytes = 1 << 20;
  static void run(const NormRows& j, int64_t row_begin, int64_t row_end) {
    const bool stream = kCanStream && j.out.data != j.in.data && !j.residual.data &&
                        j.tokens * j.heads * int64_t(j.dim) * kElem >= kStreamBytes;
    const int64_t es = kElem, row_bytes = int64_t(j.dim) * es;
    const int64_t ahead = std::max<int64_t>(1, kAheadBytes / row_bytes);
    int64_t t = row_begin / j.heads, h = row_begin % j.heads;
    int64_t pt = (row_begin + ahead) / j.heads, ph = (row_begin + ahead) % j.heads;  // row r + ahead
    for (int64_t r = row_begin; r < row_end; ++r) {
      const char* pf_in = nullptr;
      const char* pf_res = nullptr;
      if (r + ahead < row_end) {
        pf_in = j.in.row(pt, ph, es);
        if (j.residual.data) pf_res = j.residual.row(pt, ph, es);
        if (++ph == j.heads) ph = 0, ++pt;
      }
      row(j, t, h, pf_in, pf_res, stream);
      if (++h == j.heads) h = 0, ++t;
    }
    if constexpr (kCanStream) {
      if (stream) SimdIsa<A>::stream_fence();
    }
  }
};

template <class A>
NormKernel select_norm_kernel(DType x, DType w) {
  return with_dtypes(x, w, [](auto xt, auto wt) -> NormKernel {
    return &NormKernelBody<A, decltype(xt)::value, decltype(wt)::value>::run;
  });
}

}  // namespace
}  // namespace pagedinfer::detail
