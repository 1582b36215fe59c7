// Paged attention on AVX512-BF16 dot products (vdpbf16ps), for bf16 q and bf16 KV.
//
// Both products run on pairs of bf16 with fp32 accumulation, twice the multiply-adds per
// instruction of fp32 FMA and without widening K or V to fp32:
//   QK: a K row chunk (32 bf16 along d) against the same chunk of a q row: lane i accumulates
//       d = 2i, 2i + 1. q and K are used as stored, so every product is exact; the scale is
//       applied to the fp32 scores. The accumulators of 4 rows x 4 keys are summed at once (haddp).
//   PV: P is rounded to bf16 (as FlashAttention and PyTorch's CPU flash attention do for bf16
//       inputs) and paired by token; V rows of a tile are interleaved once into token pairs
//       (vpack) that every row block reads: lane c accumulates p_2j v_2j[c] + p_2j+1 v_2j+1[c].
//       Interleaving works within 128-bit lanes, so an accumulator vector holds a permuted set
//       of columns; unpermute() restores the order once per row at the end.
#include "attention/driver.hpp"
#include "common/simd/x86_avx512.hpp"
#include "common/simd/x86_avx512_dot.hpp"

namespace pagedinfer::detail {

namespace {

struct Bf16Dots {
  using Item = AttentionItemState;
  using B = xsimd::batch<float, Avx512Arch>;
  static constexpr bool kScaledQueries = false;
  static constexpr int kQkRows = 4, kQkKeys = 4;  // 16 accumulators, summed in registers
  static constexpr int kPvRows = 4, kPvVecs = 4;  // 16 accumulators + 4 V vectors + 1 broadcast
  static constexpr int kQkRowsT = 8;              // transposed QK: 8 rows x 32 keys accumulators
  static constexpr int kTransposeRows = 16;       // from this many rows, transposing K pays

  static int32_t chunks(int32_t d) { return (d + 31) / 32; }  // 32-element chunks along a row
  static __mmask32 tail_mask(int32_t d) { return d % 32 ? __mmask32((1u << (d % 32)) - 1) : ~__mmask32(0); }
  static const uint16_t* q_row(const Item& x, int32_t r) { return reinterpret_cast<const uint16_t*>(x.q(r)); }

  // q rows copied as bf16, zero-padded to whole chunks.
  static void load_queries(const Item& x) {
    const TokensView& q = x.p.q;
    for (int32_t r = 0; r < x.rows; ++r) {
      const uint16_t* src = static_cast<const uint16_t*>(q.data) + x.q_token(r) * q.stride_token + x.head(r) * q.stride_head;
      uint16_t* dst = reinterpret_cast<uint16_t*>(x.q(r));
      std::copy(src, src + x.dq, dst);
      std::fill(dst + x.dq, dst + 32 * chunks(x.dq), uint16_t(0));
    }
  }

  // Few rows: kQkRows rows x kQkKeys keys per step, their 16 accumulators summed in registers
  // (haddp: block i of the sum holds row i's keys). Rows past nr repeat row r0 and keys past tn
  // repeat key tn - 1, so every load is of a real row; neither is stored past what
  // softmax_update reads (it masks the keys past tn).
  static void scores_block(const Item& x, int32_t r0, int32_t nr, const void* const* krow, int32_t tn,
                           AttentionPrefetch pf) {
    static_assert(kQkRows * kQkKeys == 16, "one haddp sums the block");
    const uint16_t* q[kQkRows];
#pragma GCC unroll 4
    for (int i = 0; i < kQkRows; ++i) q[i] = q_row(x, r0 + (i < nr ? i : 0));
    const int32_t full = x.dq / 32;
    const __mmask32 m = tail_mask(x.dq);
    for (int32_t j = 0; j < tn; j += kQkKeys) {
      pf.issue(j, j + kQkKeys);
      const uint16_t* k[kQkKeys];
#pragma GCC unroll 4
      for (int t = 0; t < kQkKeys; ++t) k[t] = static_cast<const uint16_t*>(krow[std::min(j + t, tn - 1)]);
      B acc[16];  // acc[kQkKeys * i + t]: row i, key t
#pragma GCC unroll 16
      for (int a = 0; a < 16; ++a) acc[a] = _mm512_setzero_ps();
      const auto step = [&](int32_t c, auto load_k) {
#pragma GCC unroll 4
        for (int t = 0; t < kQkKeys; ++t) {
          const __m512i kc = load_k(k[t] + 32 * c);
#pragma GCC unroll 4
          for (int i = 0; i < kQkRows; ++i)
            acc[kQkKeys * i + t] = Bf16Dot::dot(acc[kQkKeys * i + t], kc, _mm512_load_si512(q[i] + 32 * c));
        }
      };
      for (int32_t c = 0; c < full; ++c) step(c, [](const uint16_t* p) { return _mm512_loadu_si512(p); });
      if (x.dq % 32) step(full, [m](const uint16_t* p) { return _mm512_maskz_loadu_epi16(m, p); });
      alignas(64) float sums[16];
      SimdIsa<Avx512Arch>::haddp(acc).store_aligned(sums);
      for (int32_t i = 0; i < nr; ++i) _mm_store_ps(x.s(r0 + i) + j, _mm_load_ps(sums + kQkKeys * i));
    }
  }

  // Transposes 16 rows of 16 dwords in registers.
  static void transpose16(__m512i* r) {
    __m512i t[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)
      for (int k = 0; k < 2; ++k) {
        r[i + 2 * k] = _mm512_unpacklo_epi64(t[i + k], t[i + k + 2]);
        r[i + 2 * k + 1] = _mm512_unpackhi_epi64(t[i + k], t[i + k + 2]);
      }
    // r[4g + o], block b: dword 4b + o of rows 4g..4g+3. Two rounds of 128-bit block shuffles
    // gather the four row groups of each dword.
    for (int i = 0; i < 16; ++i) t[i] = r[i];
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 2; ++k) {
        r[i + 8 * k] = _mm512_shuffle_i32x4(t[i + 8 * k], t[i + 4 + 8 * k], _MM_SHUFFLE(2, 0, 2, 0));
        r[i + 4 + 8 * k] = _mm512_shuffle_i32x4(t[i + 8 * k], t[i + 4 + 8 * k], _MM_SHUFFLE(3, 1, 3, 1));
      }
    for (int i = 0; i < 16; ++i) t[i] = r[i];
    for (int i = 0; i < 8; ++i) {
      r[i] = _mm512_shuffle_i32x4(t[i], t[i + 8], _MM_SHUFFLE(2, 0, 2, 0));
      r[i + 8] = _mm512_shuffle_i32x4(t[i], t[i + 8], _MM_SHUFFLE(3, 1, 3, 1));
    }
  }

  // Many rows: K of the tile is transposed once into bf16 pairs (vpack as kt[dp][32 keys]) so that
  // lanes are keys and scores need no horizontal sums: s[r][j] += q pair dp . kt[dp][j].
  static void transpose_keys(const Item& x, const void* const* krow, int32_t tn, AttentionPrefetch pf) {
    __m512i* kt = reinterpret_cast<__m512i*>(x.vpack());
    for (int32_t c = 0; c < chunks(x.dq); ++c) {
      const __mmask32 m = c + 1 < chunks(x.dq) ? ~__mmask32(0) : tail_mask(x.dq);
      for (int32_t jb = 0; jb < kAttnTile; jb += 16) {
        if (c == 0) pf.issue(jb, jb + 16);
        __m512i r[16];
        for (int32_t j = 0; j < 16; ++j)
          r[j] = jb + j < tn ? _mm512_maskz_loadu_epi16(m, static_cast<const uint16_t*>(krow[jb + j]) + 32 * c)
                             : _mm512_setzero_si512();
        transpose16(r);  // r[i]: dword i of the chunk (d pair 16c + i) of keys jb..jb+15
        for (int i = 0; i < 16; ++i) _mm512_store_si512(kt + (16 * c + i) * 2 + jb / 16, r[i]);
      }
    }
  }

  template <int NR>
  static void scores_transposed(const Item& x, int32_t r0) {
    const __m512i* kt = reinterpret_cast<const __m512i*>(x.vpack());
    const int32_t* q[NR];
    __m512 acc[NR][2];
    for (int i = 0; i < NR; ++i) {
      q[i] = reinterpret_cast<const int32_t*>(x.q(r0 + i));
      acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    }
    const int32_t pairs = 16 * chunks(x.dq);
    for (int32_t dp = 0; dp < pairs; ++dp, kt += 2) {
      const __m512i k0 = _mm512_load_si512(kt), k1 = _mm512_load_si512(kt + 1);
      for (int i = 0; i < NR; ++i) {
        const __m512i qp = _mm512_set1_epi32(q[i][dp]);
        acc[i][0] = Bf16Dot::dot(acc[i][0], k0, qp);
        acc[i][1] = Bf16Dot::dot(acc[i][1], k1, qp);
      }
    }
    for (int i = 0; i < NR; ++i) {
      _mm512_store_ps(x.s(r0 + i), acc[i][0]);
      _mm512_store_ps(x.s(r0 + i) + 16, acc[i][1]);
    }
  }

  static void scores(const Item& x, const void* const* krow, int32_t tn, AttentionPrefetch pf) {
    if (x.rows >= kTransposeRows) {
      transpose_keys(x, krow, tn, pf);
      for (int32_t r = 0; r < x.rows; r += kQkRowsT)
        with_count<kQkRowsT>(std::min(kQkRowsT, x.rows - r), [&](auto n) { scores_transposed<decltype(n)::value>(x, r); });
      return;
    }
    for (int32_t r = 0; r < x.rows; r += kQkRows, pf.n = 0)
      scores_block(x, r, std::min(kQkRows, x.rows - r), krow, tn, pf);
  }

  // o[i][c] += P_i . vpack over the tile's token pairs, for NR rows and NV vectors from v0.
  // Every loop over o is unrolled: GCC keeps an array it indexes at run time on the stack.
  template <int NR, int NV>
  static void pv_block(const Item& x, int32_t r0, int32_t v0, int32_t pairs, int32_t vecs) {
    __m512 o[NR][NV];
    const int32_t* p[NR];  // bf16 pairs of probabilities
    float* acc[NR];
#pragma GCC unroll 4
    for (int i = 0; i < NR; ++i) {
      p[i] = reinterpret_cast<const int32_t*>(x.s(r0 + i));
      acc[i] = x.acc(r0 + i) + 16 * v0;
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) o[i][c] = _mm512_load_ps(acc[i] + 16 * c);
    }
    const __m512i* vp = reinterpret_cast<const __m512i*>(x.vpack()) + v0;
    for (int32_t jp = 0; jp < pairs; ++jp, vp += vecs) {
      __m512i v[NV];
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) v[c] = _mm512_load_si512(vp + c);
#pragma GCC unroll 4
      for (int i = 0; i < NR; ++i) {
        const __m512i pj = _mm512_set1_epi32(p[i][jp]);
#pragma GCC unroll 4
        for (int c = 0; c < NV; ++c) o[i][c] = Bf16Dot::dot(o[i][c], v[c], pj);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; ++i)
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) _mm512_store_ps(acc[i] + 16 * c, o[i][c]);
  }

  static void accumulate(const Item& x, const void* const* vrow, int32_t tn, AttentionPrefetch pf) {
    // P rows to bf16, in place over the first half of each score row (zero past tn already).
    for (int32_t r = 0; r < x.rows; ++r) {
      float* s = x.s(r);
      const __m512bh p = _mm512_cvtne2ps_pbh(_mm512_load_ps(s + 16), _mm512_load_ps(s));
      _mm512_store_si512(s, (__m512i)p);
    }
    // V rows to token pairs: vector 2c of pair jp interleaves columns 32c.. of its two tokens'
    // lower 128-bit halves' elements, vector 2c + 1 the upper ones (unpacklo / unpackhi).
    const int32_t pairs = (tn + 1) / 2, vchunks = chunks(x.dv), vecs = 2 * vchunks, full = x.dv / 32;
    const __mmask32 m = tail_mask(x.dv);
    __m512i* vp = reinterpret_cast<__m512i*>(x.vpack());
    const auto interleave = [](__m512i* out, int32_t c, __m512i a, __m512i b) {
      out[2 * c] = _mm512_unpacklo_epi16(a, b);
      out[2 * c + 1] = _mm512_unpackhi_epi16(a, b);
    };
    for (int32_t jp = 0; jp < pairs; ++jp) {
      pf.issue(2 * jp, 2 * jp + 2);
      const uint16_t* a = static_cast<const uint16_t*>(vrow[2 * jp]);
      __m512i* out = vp + jp * vecs;
      if (2 * jp + 1 < tn) {
        const uint16_t* b = static_cast<const uint16_t*>(vrow[2 * jp + 1]);
        for (int32_t c = 0; c < full; ++c) interleave(out, c, _mm512_loadu_si512(a + 32 * c), _mm512_loadu_si512(b + 32 * c));
        if (full < vchunks)
          interleave(out, full, _mm512_maskz_loadu_epi16(m, a + 32 * full), _mm512_maskz_loadu_epi16(m, b + 32 * full));
      } else {  // the tile's odd last token, paired with zeros
        for (int32_t c = 0; c < vchunks; ++c)
          interleave(out, c, _mm512_maskz_loadu_epi16(c < full ? ~__mmask32(0) : m, a + 32 * c), _mm512_setzero_si512());
      }
    }
    for (int32_t r = 0; r < x.rows; r += kPvRows)
      for (int32_t v0 = 0; v0 < vecs; v0 += kPvVecs)
        with_count<kPvRows>(std::min(kPvRows, x.rows - r), [&](auto nr) {
          with_count<kPvVecs>(std::min(kPvVecs, vecs - v0), [&](auto nv) {
            pv_block<decltype(nr)::value, decltype(nv)::value>(x, r, v0, pairs, vecs);
          });
        });
  }

  // In each chunk of 32 columns, the lo vector holds columns 8b + {0..3} in lanes 4b + {0..3}
  // and the hi vector columns 8b + {4..7}, for each 128-bit block b: interleave the blocks.
  static void unpermute(float* o, int32_t dv) {
    const __m512i first = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i second = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    for (int32_t c = 0; c < chunks(dv); ++c) {
      const __m512 lo = _mm512_load_ps(o + 32 * c), hi = _mm512_load_ps(o + 32 * c + 16);
      _mm512_store_ps(o + 32 * c, _mm512_permutex2var_ps(lo, first, hi));
      _mm512_store_ps(o + 32 * c + 16, _mm512_permutex2var_ps(lo, second, hi));
    }
  }
};

}  // namespace

AttentionItemFn attention_kernel_avx512_bf16() { return &AttentionDriver<Avx512Arch, Bf16Dots>::run; }

}  // namespace pagedinfer::detail
