// The fp32 dot-product policy of the attention driver (driver.hpp), written once over
// xsimd::batch<float, A> and instantiated by each ISA translation unit (x86_avx512.cpp, ...):
//   QK: each K row is converted to fp32 in registers once per row block and dotted with the
//       block's rows (q pre-multiplied by the scale); W dot products are reduced at once with a
//       transposing horizontal add (haddp).
//   PV: register-blocked rows x columns, P broadcast, V converted once per block.
#pragma once
#include "attention/driver.hpp"
#include "common/dtype_dispatch.hpp"

namespace pagedinfer::detail {
namespace {  // internal linkage: every ISA TU gets its own copy (see scalar_convert.hpp)

// Tuning is an ISA's register budget:
//   qk_rows  rows whose QK accumulators live in registers at once
//   pv_rows x pv_cols  output accumulators (vectors) of the P.V block
template <class A, DType KV, class Tuning>
struct Fp32Dots {
  using B = xsimd::batch<float, A>;
  using Item = AttentionItemState;
  static constexpr int32_t W = int32_t(B::size);
  static constexpr bool kScaledQueries = true;

  // Q rows in fp32, pre-multiplied by the scale.
  static void load_queries(const Item& x) {
    const TokensView& q = x.p.q;
    const std::size_t es = dtype_size(q.dtype);
    for (int32_t r = 0; r < x.rows; ++r) {
      const char* src = static_cast<const char*>(q.data) + (x.q_token(r) * q.stride_token + x.head(r) * q.stride_head) * es;
      float* dstq = x.q(r);
      for (int32_t d = 0; d < x.dq; ++d) {  // inline conversions: this runs once per row per item
        const float v = q.dtype == DType::f32    ? reinterpret_cast<const float*>(src)[d]
                        : q.dtype == DType::bf16 ? bf16_bits_to_float(reinterpret_cast<const uint16_t*>(src)[d])
                                                 : f16_bits_to_float(reinterpret_cast<const uint16_t*>(src)[d]);
        dstq[d] = v * x.p.scale;
      }
    }
  }

  static void unpermute(float*, int32_t) {}  // columns stay in natural order

  // S[r][j] = q_r . k_j for all rows, j < tn. The first row block issues the prefetches.
  static void scores(const Item& x, const void* const* krow, int32_t tn, AttentionPrefetch pf) {
    int32_t r = 0;
    for (; r + Tuning::qk_rows <= x.rows; r += Tuning::qk_rows, pf.n = 0)
      scores_block<Tuning::qk_rows>(x, r, krow, tn, pf);
    if (r < x.rows)
      with_count<Tuning::qk_rows - 1>(x.rows - r, [&](auto n) { scores_block<decltype(n)::value>(x, r, krow, tn, pf); });
  }

  // part[i][jj + t] = lane-wise q_i * k_t for NT keys at once: NR x NT independent FMA chains,
  // enough to keep both FMA pipes busy (one key alone is latency-bound: 1 FMA per cycle).
  template <int NR, int NT>
  static void dots(const float* const* q, const void* const* krow, int32_t dvec, B (*part)[W], int32_t jj) {
    B sum[NT][NR];
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t)
      for (int i = 0; i < NR; ++i) sum[t][i] = B(0.f);
    for (int32_t d = 0; d < dvec; d += W) {
#pragma GCC unroll 2
      for (int t = 0; t < NT; ++t) {
        const B kv = load_as<A, KV>(krow[t], d);
#pragma GCC unroll 8
        for (int i = 0; i < NR; ++i) sum[t][i] = xsimd::fma(B::load_aligned(q[i] + d), kv, sum[t][i]);
      }
    }
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t)
      for (int i = 0; i < NR; ++i) part[i][jj + t] = sum[t][i];
  }

  template <int NR>
  static void scores_block(const Item& x, int32_t r0, const void* const* krow, int32_t tn, AttentionPrefetch pf) {
    const int32_t dvec = x.dq / W * W;
    const float* q[NR];
    for (int i = 0; i < NR; ++i) q[i] = x.q(r0 + i);
    B part[NR][W];  // part[i][jj]: lane-wise partial dot product of row i with key j0 + jj
    for (int32_t j0 = 0; j0 < tn; j0 += W) {
      const int32_t jn = std::min(W, tn - j0);
      for (int32_t jj = 0; jj < jn; jj += 2) {
        const int32_t nt = std::min(2, jn - jj);
        pf.issue(j0 + jj, j0 + jj + nt);
        if (nt == 2) dots<NR, 2>(q, krow + j0 + jj, dvec, part, jj);
        else dots<NR, 1>(q, krow + j0 + jj, dvec, part, jj);
      }
      for (int i = 0; i < NR; ++i) {
        for (int32_t jj = jn; jj < W; ++jj) part[i][jj] = B(0.f);
        SimdIsa<A>::haddp(part[i]).store_aligned(x.s(r0 + i) + j0);
      }
      if (dvec < x.dq) {  // head dims that are not a multiple of W (e.g. 72 with W = 16)
        for (int32_t jj = 0; jj < jn; ++jj)
          for (int i = 0; i < NR; ++i) {
            float t = 0.f;
            for (int32_t d = dvec; d < x.dq; ++d) t += q[i][d] * scalar_as<KV>(krow[j0 + jj], d);
            x.s(r0 + i)[j0 + jj] += t;
          }
      }
    }
  }

  // acc[r] += sum_j P[r][j] * v_j over the tile. The first block issues the prefetches.
  static void accumulate(const Item& x, const void* const* vrow, int32_t tn, AttentionPrefetch pf) {
    constexpr int32_t NR = Tuning::pv_rows, NC = Tuning::pv_cols;
    const int32_t dvec = x.dv / W * W;
    int32_t r = 0;
    for (; r < x.rows; r += NR) {
      const int32_t nr = std::min(NR, x.rows - r);
      int32_t c = 0;
      for (; c + NC * W <= dvec; c += NC * W, pf.n = 0) accumulate_rows<NC>(x, r, nr, c, vrow, tn, pf);
      for (; c < dvec; c += W, pf.n = 0) accumulate_rows<1>(x, r, nr, c, vrow, tn, pf);
      for (; c < x.dv; ++c)
        for (int32_t i = 0; i < nr; ++i) {
          float t = 0.f;
          for (int32_t j = 0; j < tn; ++j) t += x.s(r + i)[j] * scalar_as<KV>(vrow[j], c);
          x.acc(r + i)[c] += t;
        }
    }
  }

  template <int NC>
  static void accumulate_rows(const Item& x, int32_t r0, int32_t nr, int32_t c0, const void* const* vrow,
                              int32_t tn, AttentionPrefetch pf) {
    with_count<Tuning::pv_rows>(nr, [&](auto n) { accumulate_block<decltype(n)::value, NC>(x, r0, c0, vrow, tn, pf); });
  }

  template <int NR, int NC>
  static void accumulate_block(const Item& x, int32_t r0, int32_t c0, const void* const* vrow, int32_t tn,
                               AttentionPrefetch pf) {
    B o[NR][NC];
    const float* pr[NR];
    for (int i = 0; i < NR; ++i) {
      pr[i] = x.s(r0 + i);
      for (int c = 0; c < NC; ++c) o[i][c] = B::load_aligned(x.acc(r0 + i) + c0 + c * W);
    }
    for (int32_t j = 0; j < tn; ++j) {
      pf.issue(j, j + 1);
      B v[NC];
#pragma GCC unroll 4
      for (int c = 0; c < NC; ++c) v[c] = load_as<A, KV>(vrow[j], c0 + c * W);
#pragma GCC unroll 8
      for (int i = 0; i < NR; ++i) {
        const B pj(pr[i][j]);
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) o[i][c] = xsimd::fma(pj, v[c], o[i][c]);
      }
    }
    for (int i = 0; i < NR; ++i)
      for (int c = 0; c < NC; ++c) o[i][c].store_aligned(x.acc(r0 + i) + c0 + c * W);
  }

};

template <class A, class Tuning>
AttentionItemFn select_attention_kernel(DType kv) {
  return with_kv_dtype(kv, [](auto t) -> AttentionItemFn {
    return &AttentionDriver<A, Fp32Dots<A, decltype(t)::value, Tuning>>::run;
  });
}

}  // namespace
}  // namespace pagedinfer::detail
