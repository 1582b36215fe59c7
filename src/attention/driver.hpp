// The paged-attention work-item driver, shared by every kernel: the FlashAttention-2 style walk
// over KV tiles with online softmax, written once over xsimd::batch<float, A>. What differs
// between kernels is how the dot products are done, a `Dots` policy:
//   Dots::kScaledQueries          true: load_queries folded the scale into q (scores arrive
//                                 scaled); false: the driver scales the scores
//   Dots::load_queries(x)         q rows of the item into x.q(r), in the policy's own format
//   Dots::scores(x, krow, tn, pf) S[r][j] = q_r . k_j for j < tn into x.s(r); issues pf (next K)
//   Dots::accumulate(x, vrow, tn, pf)  acc[r] += P[r][j] v_j (P in x.s(r), fp32, zero past tn);
//                                 issues pf (next V)
//   Dots::unpermute(o, dv)        acc row in the policy's column order -> natural order
// generic.hpp holds the fp32 policy (every ISA), x86_avx512_bf16.cpp the bf16 dot-product one.
//
// One work item = `rows` query rows (query tokens x the query heads of one KV head, so a page of
// K/V is loaded once for the whole GQA group) against a range of KV tokens, in tiles of
// kAttnTile tokens:
//   S = Q K^T            Dots::scores
//   S -> P               softcap, ALiBi, masks, running max m, P = exp(S - m), running sum l
//   O = O * alpha + P V  Dots::accumulate
// A quantized cache (kv_cache.hpp) is read as its stored values widened to fp32 (load_as); each
// key's scale multiplies its scores after Dots::scores and each value's scale its probabilities
// after the softmax (so the running sum l is of the true probabilities).
// The K/V rows of the next two tiles are prefetched while this one is computed: pages are
// scattered, so hardware prefetchers cannot follow them (see AttentionPrefetch and run()).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "attention/kernel.hpp"
#include "common/dtype_dispatch.hpp"
#include "common/static_count.hpp"
#include "common/simd/load.hpp"
#include "kv_cache/paged.hpp"

namespace pagedinfer::detail {
namespace {  // internal linkage: every ISA TU gets its own copy (see scalar_convert.hpp)

constexpr float kAttnNegInf = -std::numeric_limits<float>::infinity();

// A work item being computed: its geometry and its slices of the thread's scratch.
struct AttentionItemState {
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
  // Row r's running sum of probabilities as W lane-partial sums (W <= 16), reduced once in
  // finish(): a horizontal sum per row and tile would sit on the softmax's critical path.
  float* l(int32_t r) const { return scratch + lay.l + std::size_t(r) * 16; }
  float* vpack() const { return scratch + lay.vpack; }
  // Addresses of the K (V) rows of a tile, in kAttnSlots slots: tile i of the item uses slot
  // i mod kAttnSlots.
  const void** k_ptrs(int32_t slot) const { return reinterpret_cast<const void**>(scratch + lay.ptrs) + slot * kAttnTile; }
  const void** v_ptrs(int32_t slot) const { return k_ptrs(kAttnSlots + slot); }
  // A quantized cache's scales of the tile's keys (values); 0 past the tile.
  float* k_scales() const { return scratch + lay.scales; }
  float* v_scales() const { return k_scales() + kAttnTile; }
  int64_t q_token(int32_t r) const { return p.q_indptr[it.req] + it.q_begin + r / group; }
  int32_t pos(int32_t r) const { return kv_len - q_len + it.q_begin + r / group; }
  int32_t head(int32_t r) const { return it.kv_head * group + r % group; }

  // The custom mask of row r over the tile's keys t0 + j, j < n (n <= kAttnTile = 32): bit j
  // set iff visible. Reads only the bytes of the request's segment that hold those keys.
  uint32_t mask_word(int32_t r, int32_t t0, int32_t n) const {
    static_assert(kAttnTile == 32, "one 32-bit word of mask bits per tile");
    const int64_t at = int64_t(it.q_begin + r / group) * kv_len + t0;
    const uint8_t* seg = p.custom_mask + p.mask_indptr[it.req];
    uint32_t word = 0;
    if (!p.mask_packed) {
      for (int32_t j = 0; j < n; ++j) word |= uint32_t(seg[at + j] != 0) << j;
      return word;
    }
    uint64_t bits = 0;  // the bytes holding bits at .. at + n - 1, little-endian
    for (int64_t b = at >> 3, shift = 0; b <= (at + n - 1) >> 3; ++b, shift += 8) bits |= uint64_t(seg[b]) << shift;
    word = uint32_t(bits >> (at & 7));
    return n == 32 ? word : word & ((1u << n) - 1);
  }

  // Keys visible to row r, clipped to the item's KV range: [lo, hi).
  void visible(int32_t r, int32_t& lo, int32_t& hi) const {
    const int32_t at = pos(r);
    lo = std::max(it.kv_begin, p.window_left >= 0 ? at - p.window_left : 0);
    hi = it.kv_end;
    if (p.causal) hi = std::min(hi, at + 1);
    else if (p.window_right >= 0) hi = std::min(hi, at + p.window_right + 1);
  }
};

// Rows of the next tile (its K rows or its V rows), fetched into L2 one token at a time: K while
// this tile's scores are computed, V while its P.V is. Spread out that way, the requests keep
// memory busy through the whole tile without filling the core's miss queue at once; the
// hardware drops prefetches it has no room for, so this second pass also catches what the
// burst of fetch_rows (the tile after next, when its addresses are known) lost.
struct AttentionPrefetch {
  const void* const* rows;
  int32_t n;  // tokens of the next tile; 0 once issued
  int64_t bytes;
  // Prefetches the next tile's tokens [t0, t1) (clipped to n).
  void issue(int32_t t0, int32_t t1) const {
    for (int32_t t = t0; t < t1 && t < n; ++t) prefetch_bytes(rows[t], bytes);
  }
};

template <class A, class Dots>
struct AttentionDriver {
  using B = xsimd::batch<float, A>;
  static constexpr int32_t W = int32_t(B::size);
  static_assert(kAttnTile % W == 0, "a tile holds whole vectors of scores");

  static void run(const AttentionParams& p, const AttentionWorkItem& it, int32_t group, AttentionItemOutput dst,
                  float* scratch, KvFetch fetch) {
    const int32_t rows = (it.q_end - it.q_begin) * group;
    AttentionItemState x{p,
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
    Dots::load_queries(x);
    for (int32_t r = 0; r < rows; ++r) {
      std::fill(x.acc(r), x.acc(r) + x.lay.v_stride, 0.f);
      x.m()[r] = kAttnNegInf;
      std::fill(x.l(r), x.l(r) + 16, 0.f);
    }
    const int64_t es = int64_t(dtype_size(p.cache.dtype));
    const bool quantized = is_quantized(p.cache);
    // Rows are ordered by position, and each bound of the visible range grows with it.
    int32_t begin, end, unused;
    x.visible(0, begin, unused);
    x.visible(rows - 1, unused, end);
    // Rows are fetched twice ahead: tile i + 2's all at once when its addresses are known, and
    // tile i + 1's again row by row during tile i, which catches what the first fetch dropped;
    // with streams, tile i + kStreamTiles's L2 streams are started too (KvFetch).
    const bool streams = fetch == KvFetch::rows_and_streams && contiguous_runs(p.cache);
    if (begin < end) {
      const auto tile_len = [&](int32_t t0) { return std::max(0, std::min(kAttnTile, end - t0)); };
      if (streams) start_streams(x, begin, std::min(end, begin + kStreamTiles * kAttnTile));
      for (int32_t i = 0; i < 2; ++i)
        if (const int32_t n = tile_len(begin + i * kAttnTile)) {
          fill_rows(x, begin + i * kAttnTile, n, i);
          fetch_rows(x, i, n);
        }
      for (int32_t t0 = begin, cur = 0; t0 < end; t0 += kAttnTile, cur = (cur + 1) % kAttnSlots) {
        const int32_t tn = tile_len(t0), next = tile_len(t0 + kAttnTile), far = tile_len(t0 + 2 * kAttnTile);
        if (const int32_t ahead = tile_len(t0 + kStreamTiles * kAttnTile); streams && ahead)
          start_streams(x, t0 + kStreamTiles * kAttnTile, t0 + kStreamTiles * kAttnTile + ahead);
        const int32_t slot1 = (cur + 1) % kAttnSlots, slot2 = (cur + 2) % kAttnSlots;
        if (far) {
          fill_rows(x, t0 + 2 * kAttnTile, far, slot2);
          fetch_rows(x, slot2, far);
        }
        Dots::scores(x, x.k_ptrs(cur), tn, AttentionPrefetch{x.k_ptrs(slot1), next, x.dq * es});
        if (quantized) {
          fill_scales(x, t0, tn);
          scale_columns(x, x.k_scales());
        }
        softmax_update(x, t0, tn);
        if (quantized) scale_columns(x, x.v_scales());
        Dots::accumulate(x, x.v_ptrs(cur), tn, AttentionPrefetch{x.v_ptrs(slot1), next, x.dv * es});
      }
    }
    finish(x, dst);
  }

  // Tiles ahead of the one being computed whose L2 streams are started (KvFetch).
  static constexpr int32_t kStreamTiles = 4;

  // Whether one KV head's rows of a page are contiguous in K and in V (an MLA latent cache's V
  // is read inside K's rows).
  static bool contiguous_runs(const KVCacheView& c) {
    return c.k.stride_token == c.k.head_dim && (v_in_k(c) || c.v.stride_token == c.v.head_dim);
  }

  // Starts the L2 stream prefetcher on the K and V rows of tokens [t0, t1): two lines at the
  // start of each page's run and at each 4 KiB boundary inside it (a stream stops at one).
  static void start_streams(const AttentionItemState& x, int32_t t0, int32_t t1) {
    const KVCacheView& c = x.p.cache;
    const int64_t es = int64_t(dtype_size(c.dtype));
    const auto start = [](const char* run, int64_t bytes) {
      for (const char *a = run, *end = run + bytes; a < end;
           a = reinterpret_cast<const char*>((reinterpret_cast<uintptr_t>(a) | 4095) + 1))
        prefetch_bytes(a, std::min<int64_t>(128, end - a));
    };
    for (int32_t t = t0; t < t1;) {
      const int32_t page = t / c.page_size, off = t % c.page_size, n = std::min(t1 - t, c.page_size - off);
      const int64_t id = x.pages[page];
      start(static_cast<const char*>(c.k.data) + row_offset(c.k, id, off, x.it.kv_head) * es, n * c.k.head_dim * es);
      if (!v_in_k(c))
        start(static_cast<const char*>(c.v.data) + row_offset(c.v, id, off, x.it.kv_head) * es, n * c.v.head_dim * es);
      t += n;
    }
  }

  // x.s(r)[j] *= f[j] for every row and the whole tile.
  static void scale_columns(const AttentionItemState& x, const float* f) {
    for (int32_t r = 0; r < x.rows; ++r)
      for (int32_t j = 0; j < kAttnTile; j += W)
        (B::load_aligned(x.s(r) + j) * B::load_aligned(f + j)).store_aligned(x.s(r) + j);
  }

  // The scales of tokens [t0, t0 + tn) of a quantized cache, 0 past tn (an i8 cache's lines
  // were prefetched by fill_rows).
  static void fill_scales(const AttentionItemState& x, int32_t t0, int32_t tn) {
    const KVCacheView& c = x.p.cache;
    float* ks = x.k_scales();
    float* vs = x.v_scales();
    std::fill(ks + tn, ks + kAttnTile, 0.f);
    std::fill(vs + tn, vs + kAttnTile, 0.f);
    if (!has_row_scales(c)) {  // fp8: one scale per tensor
      std::fill(ks, ks + tn, c.k_scale);
      std::fill(vs, vs + tn, c.v_scale);
      return;
    }
    for (int32_t j = 0, page = t0 / c.page_size, off = t0 % c.page_size; j < tn; ++page, off = 0) {
      const float* k = &row_scale(c.k, x.pages[page], off, x.it.kv_head);
      const float* v = &row_scale(c.v, x.pages[page], off, x.it.kv_head);
      for (const int32_t stop = std::min(tn, j + c.page_size - off); j < stop; ++j) {
        ks[j] = *k;
        vs[j] = *v;
        k += c.k.scale_stride_token;
        v += c.v.scale_stride_token;
      }
    }
  }

  // Prefetches the K and V rows of the tile in pointer slot `slot` (tn tokens) at once.
  static void fetch_rows(const AttentionItemState& x, int32_t slot, int32_t tn) {
    const int64_t es = int64_t(dtype_size(x.p.cache.dtype));
    AttentionPrefetch{x.k_ptrs(slot), tn, x.dq * es}.issue(0, tn);
    if (!v_in_k(x.p.cache)) AttentionPrefetch{x.v_ptrs(slot), tn, x.dv * es}.issue(0, tn);
  }

  // Addresses of the K and V rows of tokens [t0, t0 + tn) into pointer slot `slot`. An i8
  // cache's row scales are fetched here, two tiles ahead of fill_scales reading them: read now,
  // each page's scale line would stall the tile on a cache miss.
  static void fill_rows(const AttentionItemState& x, int32_t t0, int32_t tn, int32_t slot) {
    const KVCacheView& c = x.p.cache;
    if (has_row_scales(c))
      for (int32_t j = 0; j < tn; j += c.page_size - (t0 + j) % c.page_size) {
        const int64_t page = x.pages[(t0 + j) / c.page_size], off = (t0 + j) % c.page_size;
        prefetch_bytes(&row_scale(c.k, page, off, x.it.kv_head), 4);
        prefetch_bytes(&row_scale(c.v, page, off, x.it.kv_head), 4);
      }
    const std::size_t es = dtype_size(c.dtype);
    const char* kbase = static_cast<const char*>(c.k.data);
    const char* vbase = static_cast<const char*>(c.v.data);
    const void** kp = x.k_ptrs(slot);
    const void** vp = x.v_ptrs(slot);
    const int64_t k_step = c.k.stride_token * int64_t(es), v_step = c.v.stride_token * int64_t(es);
    for (int32_t j = 0, page = t0 / c.page_size, off = t0 % c.page_size; j < tn; ++page, off = 0) {
      const int64_t id = x.pages[page];
      const char* k = kbase + row_offset(c.k, id, off, x.it.kv_head) * int64_t(es);
      const char* v = vbase + row_offset(c.v, id, off, x.it.kv_head) * int64_t(es);
      for (const int32_t stop = std::min(tn, j + c.page_size - off); j < stop; ++j, k += k_step, v += v_step) {
        kp[j] = k;
        vp[j] = v;
      }
    }
  }

  // Turns the tile's scores into probabilities under the running max, rescaling what the rows
  // accumulated so far when the max grows. Probabilities past tn up to the tile's end are 0.
  // Rows whose keys are all visible with nothing to add to the logits (the decode case) take a
  // short path: the max of the raw scores, and the scale folded into the exponent.
  static void softmax_update(const AttentionItemState& x, int32_t t0, int32_t tn) {
    alignas(64) float iota_f[W];
    for (int32_t i = 0; i < W; ++i) iota_f[i] = float(i);
    const B iota = B::load_aligned(iota_f);
    const bool softcap = x.p.softcap > 0.f;
    const float scale = Dots::kScaledQueries ? 1.f : x.p.scale;
    for (int32_t r = 0; r < x.rows; ++r) {
      float* s = x.s(r);
      int32_t lo, hi;
      x.visible(r, lo, hi);
      lo = std::max(lo, t0);
      hi = std::min(hi, t0 + tn);
      if (lo >= hi) {
        std::fill(s, s + kAttnTile, 0.f);
        continue;
      }
      // A custom mask matters only where it hides some of [lo, hi); where it hides all, the row
      // has nothing in this tile.
      bool masked = false;
      alignas(64) float keep[kAttnTile];
      if (x.p.custom_mask) {
        const uint32_t in_range = (hi - t0 == 32 ? ~0u : (1u << (hi - t0)) - 1) & ~((1u << (lo - t0)) - 1);
        const uint32_t word = x.mask_word(r, t0, hi - t0) & in_range;
        if (word == 0) {
          std::fill(s, s + kAttnTile, 0.f);
          continue;
        }
        masked = word != in_range;
        if (masked)
          for (int32_t j = 0; j < kAttnTile; ++j) keep[j] = float((word >> j) & 1);
      }
      const float slope = x.p.alibi_slopes ? x.p.alibi_slopes[x.head(r)] : 0.f;
      const bool plain = lo == t0 && hi == t0 + kAttnTile && !softcap && slope == 0.f && scale > 0.f && !masked;
      B vmax(kAttnNegInf);
      if (plain) {
        for (int32_t jb = 0; jb < kAttnTile; jb += W) vmax = xsimd::max(vmax, B::load_aligned(s + jb));
      } else {
        const B cap(x.p.softcap), inv_cap(softcap ? 1.f / x.p.softcap : 0.f);
        const B vslope = B(slope), vpos = B(float(x.pos(r))), vlo = B(float(lo)), vhi = B(float(hi));
        for (int32_t jb = 0; jb < kAttnTile; jb += W) {
          B v = B::load_aligned(s + jb) * B(scale);
          const B j = B(float(t0 + jb)) + iota;
          if (softcap) v = cap * xsimd::tanh(v * inv_cap);
          if (slope != 0.f) v = v - vslope * xsimd::abs(vpos - j);
          v = xsimd::select((j >= vlo) && (j < vhi), v, B(kAttnNegInf));  // also clears stale lanes
          if (masked) v = xsimd::select(B::load_aligned(keep + jb) > B(0.f), v, B(kAttnNegInf));
          v.store_aligned(s + jb);
          vmax = xsimd::max(vmax, v);
        }
      }
      const float pre = plain ? scale : 1.f;  // what the stored scores still need (scale > 0)
      const float m_old = x.m()[r], m_new = std::max(m_old, SimdIsa<A>::hmax(vmax) * pre);
      if (m_new == kAttnNegInf) {  // every key so far masked: nothing to add (and no -inf - -inf)
        std::fill(s, s + kAttnTile, 0.f);
        continue;
      }
      const B vm(m_new), vpre(pre);
      B vsum(0.f);
      for (int32_t jb = 0; jb < kAttnTile; jb += W) {
        const B e = xsimd::exp(xsimd::fms(B::load_aligned(s + jb), vpre, vm));
        e.store_aligned(s + jb);
        vsum += e;
      }
      const float alpha = alpha_of(m_old, m_new);
      xsimd::fma(B::load_aligned(x.l(r)), B(alpha), vsum).store_aligned(x.l(r));
      x.m()[r] = m_new;
      if (alpha != 1.f) {
        const B valpha(alpha);
        float* o = x.acc(r);
        for (int32_t d = 0; d < x.lay.v_stride; d += W) (B::load_aligned(o + d) * valpha).store_aligned(o + d);
      }
    }
  }

  // The factor that moves sums taken under the max m_old to the max m_new >= m_old.
  static float alpha_of(float m_old, float m_new) {
    if (m_old == m_new) return 1.f;
    return m_old == kAttnNegInf ? 0.f : std::exp(m_old - m_new);
  }

  // Normalizes each row and hands it to the output or to the split's partial slot.
  static void finish(const AttentionItemState& x, AttentionItemOutput dst) {
    for (int32_t r = 0; r < x.rows; ++r) {
      const float l = xsimd::hadd(B::load_aligned(x.l(r)));
      float* o = x.acc(r);
      Dots::unpermute(o, x.dv);
      const float inv = l > 0.f ? 1.f / l : 0.f;
      for (int32_t d = 0; d < x.lay.v_stride; d += W) (B::load_aligned(o + d) * B(inv)).store_aligned(o + d);
      const float lse = l > 0.f ? x.m()[r] + std::log(l) : kAttnNegInf;
      if (dst.partial_out) {
        std::copy(o, o + x.dv, dst.partial_out + std::size_t(r) * x.lay.v_stride);
        dst.partial_lse[r] = lse;
      } else {
        write_row(x, r, o, lse);
      }
    }
  }

  // The row's output in out's dtype (vectorized; the sink applied) and its lse.
  static void write_row(const AttentionItemState& x, int32_t r, const float* o, float lse) {
    const AttentionParams& p = x.p;
    const int64_t token = x.q_token(r);
    const int32_t head = x.head(r);
    const float f = apply_attention_sink(p, head, lse);
    const B factor(f);
    void* out = static_cast<char*>(p.out.data) +
                (token * p.out.stride_token + head * p.out.stride_head) * int64_t(dtype_size(p.out.dtype));
    with_dtype(p.out.dtype, [&](auto t) {
      constexpr DType T = decltype(t)::value;
      int32_t d = 0;
      for (; d + W <= x.dv; d += W) store_as<A, T>(out, d, B::load_aligned(o + d) * factor);
      for (; d < x.dv; ++d) store_scalar_as<T>(out, d, o[d] * f);
    });
    if (p.lse) p.lse[token * p.num_q_heads + head] = lse;
  }
};

}  // namespace
}  // namespace pagedinfer::detail
