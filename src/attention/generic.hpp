// The paged-attention kernel, written once over xsimd::batch<float, A> and instantiated by
// each ISA translation unit (x86_avx512.cpp, ...) for its own architecture.
//
// One work item = `rows` query rows (query tokens x the query heads of one KV head, so a page
// of K/V is loaded once for the whole GQA group) against a range of KV tokens. The range is
// walked in tiles of kAttnTile tokens (FlashAttention-2 style online softmax):
//   S = Q K^T            QK: each K row is converted to fp32 in registers once per row block
//                        and dotted with the block's rows; W dot products are reduced at once
//                        with a transposing horizontal add (haddp).
//   S -> P               softcap, ALiBi, masks, running max m, P = exp(S - m), running sum l.
//   O = O * alpha + P V  PV: register-blocked rows x columns, P broadcast, V converted once
//                        per block.
// The next tile's K/V rows are prefetched while this one is computed: pages are scattered,
// so hardware prefetchers cannot follow them (see Prefetch).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "attention/kernel.hpp"
#include "common/dtype_dispatch.hpp"
#include "common/simd/load.hpp"
#include "kv_cache/paged.hpp"

namespace pagedinfer::detail {
namespace {  // internal linkage: every ISA TU gets its own copy (see scalar_convert.hpp)

// Tuning is an ISA's register budget:
//   qk_rows  rows whose QK accumulators live in registers at once
//   pv_rows x pv_cols  output accumulators (vectors) of the P.V block
template <class A, DType KV, class Tuning>
struct AttentionKernelBody {
  using B = xsimd::batch<float, A>;
  static constexpr int32_t W = int32_t(B::size);
  static constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  static_assert(kAttnTile % W == 0, "a tile holds whole vectors of scores");

  struct Item {
    const AttentionParams& p;
    const AttentionWorkItem& it;
    int32_t group, dq, dv, rows, q_len, kv_len;
    const int32_t* pages;
    AttentionScratchLayout lay;
    float* scratch;

    float* q(int32_t r) const { return scratch + lay.q + std::size_t(r) * lay.q_stride; }
    float* s(int32_t r) const { return scratch + lay.s + std::size_t(r) * kAttnTile; }
    float* acc(int32_t r) const { return scratch + lay.acc + std::size_t(r) * lay.v_stride; }
    float* m() const { return scratch + lay.m; }
    float* l() const { return scratch + lay.l; }
    const void** ptrs(int which) const {  // 0, 1: K rows of two tiles; 2, 3: V rows
      return reinterpret_cast<const void**>(scratch + lay.ptrs) + which * kAttnTile;
    }
    int32_t pos(int32_t r) const { return kv_len - q_len + it.q_begin + r / group; }
    int32_t head(int32_t r) const { return it.kv_head * group + r % group; }

    // Keys visible to row r, clipped to the item's KV range: [lo, hi).
    void visible(int32_t r, int32_t& lo, int32_t& hi) const {
      const int32_t at = pos(r);
      lo = std::max(it.kv_begin, p.window_left >= 0 ? at - p.window_left : 0);
      hi = it.kv_end;
      if (p.causal) hi = std::min(hi, at + 1);
      else if (p.window_right >= 0) hi = std::min(hi, at + p.window_right + 1);
    }
  };

  static void run(const AttentionParams& p, const AttentionWorkItem& it, int32_t group, AttentionItemOutput dst,
                  float* scratch) {
    const int32_t rows = (it.q_end - it.q_begin) * group;
    Item x{p,
           it,
           group,
           p.cache.k.head_dim,
           p.cache.v.head_dim,
           rows,
           p.q_indptr[it.req + 1] - p.q_indptr[it.req],
           p.pages.kv_len[it.req],
           request_pages(p.pages, it.req),
           AttentionScratchLayout(rows, p.cache.k.head_dim, p.cache.v.head_dim),
           scratch};
    load_queries(x);
    // Rows are ordered by position, and each bound of the visible range grows with it.
    int32_t begin, end, unused;
    x.visible(0, begin, unused);
    x.visible(rows - 1, unused, end);
    if (begin < end) {
      fill_rows(x, begin, std::min(kAttnTile, end - begin), 0);
      for (int32_t t0 = begin, cur = 0; t0 < end; t0 += kAttnTile, cur ^= 1) {
        const int32_t tn = std::min(kAttnTile, end - t0);
        const int32_t next = std::max(0, std::min(kAttnTile, end - t0 - tn));
        if (next) fill_rows(x, t0 + tn, next, cur ^ 1);
        scores(x, x.ptrs(cur), tn, Prefetch{x.ptrs(cur ^ 1), x.ptrs(2 + (cur ^ 1)), next});
        softmax_update(x, t0, tn);
        accumulate(x, x.ptrs(2 + cur), tn);
      }
    }
    finish(x, dst);
  }

  // Q rows in fp32, pre-multiplied by the scale; running state cleared.
  static void load_queries(const Item& x) {
    const TokensView& q = x.p.q;
    const std::size_t es = dtype_size(q.dtype);
    for (int32_t r = 0; r < x.rows; ++r) {
      const int64_t token = x.p.q_indptr[x.it.req] + x.it.q_begin + r / x.group;
      const char* src = static_cast<const char*>(q.data) + (token * q.stride_token + x.head(r) * q.stride_head) * es;
      float* dstq = x.q(r);
      for (int32_t d = 0; d < x.dq; ++d) {
        float v = q.dtype == DType::f32    ? reinterpret_cast<const float*>(src)[d]
                  : q.dtype == DType::bf16 ? bf16_bits_to_float(reinterpret_cast<const uint16_t*>(src)[d])
                                           : f16_bits_to_float(reinterpret_cast<const uint16_t*>(src)[d]);
        dstq[d] = v * x.p.scale;
      }
      std::fill(x.acc(r), x.acc(r) + x.lay.v_stride, 0.f);
      x.m()[r] = kNegInf;
      x.l()[r] = 0.f;
    }
  }

  // Addresses of the K and V rows of tokens [t0, t0 + tn) into pointer buffers `which`.
  static void fill_rows(const Item& x, int32_t t0, int32_t tn, int which) {
    const KVCacheView& c = x.p.cache;
    const std::size_t es = dtype_size(KV);
    const char* kbase = static_cast<const char*>(c.k.data);
    const char* vbase = static_cast<const char*>(c.v.data);
    const void** kp = x.ptrs(which);
    const void** vp = x.ptrs(2 + which);
    int32_t page = t0 / c.page_size, off = t0 % c.page_size;
    for (int32_t j = 0; j < tn; ++j) {
      const int64_t id = x.pages[page];
      kp[j] = kbase + row_offset(c.k, id, off, x.it.kv_head) * es;
      vp[j] = vbase + row_offset(c.v, id, off, x.it.kv_head) * es;
      if (++off == c.page_size) off = 0, ++page;
    }
  }

  // Rows of the next tile, fetched into L2 one token at a time while this tile's scores are
  // computed: spread out, the requests never fill the core's miss queue at once (a burst of
  // them stalled the pipeline), and they are early enough to hide DRAM latency.
  struct Prefetch {
    const void* const* k;
    const void* const* v;
    int32_t n;
  };

  // S[r][j] = q_r . k_j for all rows, j < tn. The first row block issues the prefetches.
  static void scores(const Item& x, const void* const* krow, int32_t tn, Prefetch pf) {
    int32_t r = 0;
    for (; r + Tuning::qk_rows <= x.rows; r += Tuning::qk_rows, pf.n = 0)
      scores_block<Tuning::qk_rows>(x, r, krow, tn, pf);
    if (r < x.rows)
      with_rows<Tuning::qk_rows - 1>(x.rows - r, [&](auto n) { scores_block<decltype(n)::value>(x, r, krow, tn, pf); });
  }

  // Calls f(std::integral_constant<int, n>) for a run-time n in [1, N]: register blocks need
  // their row count at compile time.
  template <int N, class F>
  static void with_rows(int32_t n, F&& f) {
    if constexpr (N >= 1) {
      if (n == N) return f(std::integral_constant<int, N>{});
      with_rows<N - 1>(n, f);
    }
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
  static void scores_block(const Item& x, int32_t r0, const void* const* krow, int32_t tn, Prefetch pf) {
    const int64_t k_bytes = x.dq * int64_t(dtype_size(KV)), v_bytes = x.dv * int64_t(dtype_size(KV));
    const int32_t dvec = x.dq / W * W;
    const float* q[NR];
    for (int i = 0; i < NR; ++i) q[i] = x.q(r0 + i);
    B part[NR][W];  // part[i][jj]: lane-wise partial dot product of row i with key j0 + jj
    for (int32_t j0 = 0; j0 < tn; j0 += W) {
      const int32_t jn = std::min(W, tn - j0);
      for (int32_t jj = 0; jj < jn; jj += 2) {
        const int32_t nt = std::min(2, jn - jj);
        for (int32_t t = j0 + jj; t < j0 + jj + nt && t < pf.n; ++t) {
          prefetch_bytes(pf.k[t], k_bytes);
          prefetch_bytes(pf.v[t], v_bytes);
        }
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

  // Turns the tile's scores into probabilities under the running max, rescaling what the rows
  // accumulated so far when the max grows.
  static void softmax_update(const Item& x, int32_t t0, int32_t tn) {
    alignas(64) float iota_f[W];
    for (int32_t i = 0; i < W; ++i) iota_f[i] = float(i);
    const B iota = B::load_aligned(iota_f);
    const int32_t tn_pad = round_up(tn, W);
    const bool softcap = x.p.softcap > 0.f;
    for (int32_t r = 0; r < x.rows; ++r) {
      float* s = x.s(r);
      int32_t lo, hi;
      x.visible(r, lo, hi);
      lo = std::max(lo, t0);
      hi = std::min(hi, t0 + tn);
      if (lo >= hi) {
        std::fill(s, s + tn_pad, 0.f);
        continue;
      }
      const B cap(x.p.softcap), inv_cap(softcap ? 1.f / x.p.softcap : 0.f);
      const float slope = x.p.alibi_slopes ? x.p.alibi_slopes[x.head(r)] : 0.f;
      const B vslope = B(slope), vpos = B(float(x.pos(r))), vlo = B(float(lo)), vhi = B(float(hi));
      B vmax(kNegInf);
      for (int32_t jb = 0; jb < tn_pad; jb += W) {
        B v = B::load_aligned(s + jb);
        const B j = B(float(t0 + jb)) + iota;
        if (softcap) v = cap * xsimd::tanh(v * inv_cap);
        if (slope != 0.f) v = v - vslope * xsimd::abs(vpos - j);
        v = xsimd::select((j >= vlo) && (j < vhi), v, B(kNegInf));
        v.store_aligned(s + jb);
        vmax = xsimd::max(vmax, v);
      }
      alignas(64) float lanes[W];
      vmax.store_aligned(lanes);
      const float tile_max = *std::max_element(lanes, lanes + W);
      const float m_old = x.m()[r], m_new = std::max(m_old, tile_max);
      const B vm(m_new);
      B vsum(0.f);
      for (int32_t jb = 0; jb < tn_pad; jb += W) {
        const B e = xsimd::exp(B::load_aligned(s + jb) - vm);
        e.store_aligned(s + jb);
        vsum += e;
      }
      const float alpha = m_old == kNegInf ? 0.f : std::exp(m_old - m_new);
      x.l()[r] = x.l()[r] * alpha + xsimd::hadd(vsum);
      x.m()[r] = m_new;
      if (alpha != 1.f) {
        float* o = x.acc(r);
        for (int32_t d = 0; d < x.lay.v_stride; d += W) (B::load_aligned(o + d) * B(alpha)).store_aligned(o + d);
      }
    }
  }

  // acc[r] += sum_j P[r][j] * v_j over the tile.
  static void accumulate(const Item& x, const void* const* vrow, int32_t tn) {
    constexpr int32_t NR = Tuning::pv_rows, NC = Tuning::pv_cols;
    const int32_t dvec = x.dv / W * W;
    int32_t r = 0;
    for (; r < x.rows; r += NR) {
      const int32_t nr = std::min(NR, x.rows - r);
      int32_t c = 0;
      for (; c + NC * W <= dvec; c += NC * W) accumulate_rows<NC>(x, r, nr, c, vrow, tn);
      for (; c < dvec; c += W) accumulate_rows<1>(x, r, nr, c, vrow, tn);
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
                              int32_t tn) {
    with_rows<Tuning::pv_rows>(nr, [&](auto n) { accumulate_block<decltype(n)::value, NC>(x, r0, c0, vrow, tn); });
  }

  template <int NR, int NC>
  static void accumulate_block(const Item& x, int32_t r0, int32_t c0, const void* const* vrow, int32_t tn) {
    B o[NR][NC];
    const float* pr[NR];
    for (int i = 0; i < NR; ++i) {
      pr[i] = x.s(r0 + i);
      for (int c = 0; c < NC; ++c) o[i][c] = B::load_aligned(x.acc(r0 + i) + c0 + c * W);
    }
    for (int32_t j = 0; j < tn; ++j) {
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

  // Normalizes each row and hands it to the output or to the split's partial slot.
  static void finish(const Item& x, AttentionItemOutput dst) {
    for (int32_t r = 0; r < x.rows; ++r) {
      const float l = x.l()[r];
      float* o = x.acc(r);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      for (int32_t d = 0; d < x.lay.v_stride; d += W) (B::load_aligned(o + d) * B(inv)).store_aligned(o + d);
      const float lse = l > 0.f ? x.m()[r] + std::log(l) : kNegInf;
      if (dst.partial_out) {
        std::copy(o, o + x.dv, dst.partial_out + std::size_t(r) * x.lay.v_stride);
        dst.partial_lse[r] = lse;
      } else {
        const int64_t token = x.p.q_indptr[x.it.req] + x.it.q_begin + r / x.group;
        write_attention_row(x.p, token, x.head(r), o, lse);
      }
    }
  }
};

template <class A, class Tuning>
AttentionItemKernel select_attention_kernel(DType kv) {
  return with_dtype(kv, [](auto t) -> AttentionItemKernel { return &AttentionKernelBody<A, decltype(t)::value, Tuning>::run; });
}

}  // namespace
}  // namespace pagedinfer::detail
