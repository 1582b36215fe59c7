// Quantized GEMM with AMX tiles (Sapphire Rapids and later). One tile dot product multiplies
// 16 rows x 64 bytes of activations ("A", row-major, ActLayout rows = 1) by 64 bytes x 16
// columns of weights ("B": 16 rows of 64 bytes, each row 16 columns x 4 bytes):
//   int8 activations (W8A8, W4A8), from 9 or 5 rows (dispatch.cpp): tdpbsud, s8 activations x u8
//     weights, exact int32 sums over 64 k, 16 times the work of a VNNI vpdpbusd. The packed
//     int8 words already are B rows (layout.hpp: 4 k of 16 columns per 64 bytes) and are read
//     in place; int4 words are split into their two nibble bytes in a small panel first.
//   bf16 activations (W8A16, W4A16), from 2 rows (dispatch.cpp): tdpbf16ps, bf16 pairs with
//     fp32 sums over 32 k. The weight words become exact bf16 pairs in a panel (the Int4Pairs /
//     Int8Pairs conversions of the vdpbf16ps kernels, whose output vectors are B rows). A
//     tdpbf16ps does 256 times a vdpbf16ps' work in about 8 times its cycles.
// Units of up to 16 rows (run_tiles_few_rows) convert their weights step by step; more rows
// share each converted chunk (run_tiles). fp32 / fp16 activations need exact fp32 products and
// run on the vector kernels.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/simd/x86_avx512.hpp"
#include "gemm/blocks.hpp"
#include "gemm/x86_avx512_prepare.hpp"
#include "gemm/x86_avx512_blocking.hpp"
#include "gemm/x86_avx512_pairs.hpp"

namespace pagedinfer::detail {
namespace {

using Storage = QuantizedWeight::Storage;
using A = Avx512Arch;

constexpr int64_t kSuperRows = 128;  // rows that share one chunk of weights

// Splits the int4 words [0, words) of one tile into B rows, two per word: its low and its high
// nibbles, the bytes (0, 4, 1, 5) and (2, 6, 3, 7) of its 8 k (layout.hpp), the order the
// activations were prepared in (WordOrder::vnni_int4).
inline void unpack_int4(const uint32_t* tile_words, int64_t words, uint8_t* panel) {
  const __m512i low = _mm512_set1_epi32(0x0f0f0f0f);
  for (int64_t jw = 0; jw < words; ++jw) {
    const __m512i v = _mm512_loadu_si512(tile_words + jw * kTile);
    _mm512_store_si512(panel + jw * 128, _mm512_and_si512(v, low));
    _mm512_store_si512(panel + jw * 128 + 64, _mm512_and_si512(_mm512_srli_epi32(v, 4), low));
  }
}

// What the two kinds of tile kernel differ in. Offsets along k are in bytes of prepared
// activations ("k bytes"): an A row holds 64 of them, and B rows hold 16 bytes per k byte.
//   kActBytes    bytes of one prepared activation
//   kChunkK      k per weight chunk: the B rows of 2 tiles' chunk (in place or in the panel)
//                stay in L1 while up to kSuperRows rows meet them
//   kPanelBytes  the panel's size per tile (0: weights read in place)
//   step_bytes   k bytes per tile dot product
//   kKPerWord    k per weight word
//   kStepK       k per tile dot product where fixed (else 0)
//   b_rows       the B rows of a tile's k [k0, k0 + kc)
//   kBf16        tdpbf16ps, else tdpbsud (PAGEDINFER_TILE_DOT)
//   sum          16 sums of tile C rows from memory as fp32
// int8 activations, int8 / int4 weights: exact int32 sums.
template <int BITS>
struct Int8Tiles {
  static constexpr int64_t kActBytes = 1, kChunkK = kAmxInt8ChunkK, kPanelBytes = BITS == 4 ? kChunkK * 16 : 0;
  static constexpr int64_t kKPerWord = 32 / BITS, kStepK = 0;  // step_bytes decides
  // 64 k, or 32 for groups of 32 (llama.cpp's Q4_0 / Q8_0) and per-channel k that 64 does not divide.
  static int64_t step_bytes(const Storage& w) { return w.group % 64 == 0 ? 64 : 32; }
  const uint8_t* b_rows(const uint32_t* tile, int64_t k0, int64_t kc, uint8_t* panel) const {
    if constexpr (BITS == 8) return reinterpret_cast<const uint8_t*>(tile + k0 / 4 * kTile);
    unpack_int4(tile + k0 / 8 * kTile, kc / 8, panel);
    return panel;
  }
  static constexpr bool kBf16 = false;
  static __m512 sum(const void* s) { return _mm512_cvtepi32_ps(_mm512_load_si512(s)); }
};

// bf16 activations, int8 / int4 weights as exact bf16 pairs (Pairs: Int8Pairs or Int4Pairs):
// fp32 sums of exact products, as the vdpbf16ps kernels compute them.
template <class Pairs>
struct Bf16Tiles {
  static constexpr int64_t kActBytes = 2, kChunkK = kAmxBf16ChunkK, kPanelBytes = kChunkK * 32;
  static constexpr int64_t kKPerWord = Pairs::kKPerWord, kStepK = 32;
  static int64_t step_bytes(const Storage&) { return 64; }
  // Pair h of word jw meets activation pair jw * kPairs + h: B row (jw * kPairs + h) of the chunk.
  Pairs pairs;
  __attribute__((always_inline)) const uint8_t* b_rows(const uint32_t* tile, int64_t k0, int64_t kc,
                                                       uint8_t* panel) const {
    const uint32_t* words = tile + k0 / Pairs::kKPerWord * kTile;
    // The int4 table in a register (in_register), not a memory operand of every vpermw.
    Pairs pairs = this->pairs;
    if constexpr (std::is_same_v<Pairs, Int4Pairs>) pairs.table = in_register(pairs.table);
#pragma GCC unroll 8
    for (int64_t jw = 0; jw < kc / Pairs::kKPerWord; ++jw) {
      const __m512i word = _mm512_loadu_si512(words + jw * kTile);
#pragma GCC unroll 4
      for (int h = 0; h < Pairs::kPairs; ++h) _mm512_store_si512(panel + (jw * Pairs::kPairs + h) * 64, pairs(word, h));
    }
    return panel;
  }
  static constexpr bool kBf16 = true;
  static __m512 sum(const void* s) { return _mm512_load_ps(static_cast<const float*>(s)); }
};

// Tile registers (ldtilecfg's 64-byte format, palette 1): tmm0-3 the sums of a block of 32 rows
// x 32 columns (rows 16 ra.., columns 16 cb..: tmm(2 ra + cb)), tmm4-5 activations of rows 0-15
// and 16-31 (`step` k bytes each), tmm6-7 the two weight tiles (step / 4 B rows). A unit of
// fewer than 16 rows configures only those (`rows`): the tile dot products cost the same, but
// their loads, stores and flushes do not.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
  TileConfig(int64_t step, int64_t a_rows) {
    for (int t = 0; t < 8; ++t) {
      bytes_per_row[t] = t == 4 || t == 5 ? uint16_t(step) : 64;
      rows[t] = t >= 6 ? uint8_t(step / 4) : uint8_t(a_rows);
    }
  }
};

// tmmC += tmmA . tmmB in the arithmetic of Tiles. A macro: GCC 12's tile intrinsics paste their
// register numbers into the asm text, so they must be literals.
#define PAGEDINFER_TILE_DOT(Tiles, C, TA, TB) \
  do {                                        \
    if constexpr (Tiles::kBf16)               \
      _tile_dpbf16ps(C, TA, TB);              \
    else                                      \
      _tile_dpbsud(C, TA, TB);                \
  } while (0)

// GCC 12's tile loads are asm statements without a memory operand: this keeps the compiler
// from moving stores they read (the panel, the tile config) past them.
inline void compiler_barrier() { asm volatile("" ::: "memory"); }

// The sums of 16 NA rows x 32 columns over k bytes [0, kn) in steps of `step`, into tmm0-3:
// started from zero, or from `partial` ([16 NA][32] sums) with `resume`. a: the rows' first k
// (row stride a_stride); b0, b1: the two weight tiles' B rows of that k.
template <class Tiles, int NA>
inline void dot_steps(const char* a, int64_t a_stride, const uint8_t* b0, const uint8_t* b1, int64_t kn,
                      int64_t step, const void* partial, bool resume) {
  const auto* p = static_cast<const int32_t*>(partial);
  if (resume) {
    _tile_loadd(0, p, 128);
    _tile_loadd(1, p + 16, 128);
    if constexpr (NA == 2) {
      _tile_loadd(2, p + 16 * 32, 128);
      _tile_loadd(3, p + 16 * 32 + 16, 128);
    }
  } else {
    _tile_zero(0);
    _tile_zero(1);
    if constexpr (NA == 2) {
      _tile_zero(2);
      _tile_zero(3);
    }
  }
  for (int64_t k = 0; k < kn; k += step) {
    _tile_loadd(6, b0 + k * 16, 64);
    _tile_loadd(7, b1 + k * 16, 64);
    _tile_loadd(4, a + k, a_stride);
    PAGEDINFER_TILE_DOT(Tiles, 0, 4, 6);
    PAGEDINFER_TILE_DOT(Tiles, 1, 4, 7);
    if constexpr (NA == 2) {
      _tile_loadd(5, a + 16 * a_stride + k, a_stride);
      PAGEDINFER_TILE_DOT(Tiles, 2, 5, 6);
      PAGEDINFER_TILE_DOT(Tiles, 3, 5, 7);
    }
  }
}

// Stores tmm0-3 as [16 NA][32] sums.
template <int NA>
inline void store_sums(void* sums) {
  auto* s = static_cast<int32_t*>(sums);
  _tile_stored(0, s, 128);
  _tile_stored(1, s + 16, 128);
  if constexpr (NA == 2) {
    _tile_stored(2, s + 16 * 32, 128);
    _tile_stored(3, s + 16 * 32 + 16, 128);
  }
}

// c (+)= the group's sums ([rows][32]) scaled (kernel.hpp's formula), for `rows` (at most 32)
// rows from m x tiles t, t + 1.
template <class Tiles>
inline void flush_group(const GemmJob& j, int64_t g, int64_t t, int64_t m, int64_t rows, const int32_t* sums,
                        float* c) {
  const Storage& w = *j.w;
  for (int cb = 0; cb < 2; ++cb) {
    const GroupParams gp(w, g, t + cb);
    for (int64_t r = 0; r < rows; ++r)
      gp.flush(c + r * 32 + cb * 16, Tiles::sum(sums + r * 32 + cb * 16), j.act_sums[(m + r) * w.groups + g], g > 0);
  }
}

// Tiles t, t + 1 over the chunk [k0, k0 + kc) (b: its B rows per tile) for `rows` rows from m
// (16 NA of them computed) into c ([16 NA][32] float). A group lies inside one chunk, or is all
// of k (per channel): its sums then wait in `partial` between chunks.
template <class Tiles, int NA>
void chunk_rows(const GemmJob& j, int64_t t, int64_t m, int64_t rows, int64_t k0, int64_t kc,
                const uint8_t* const (&b)[2], int32_t* partial, float* c) {
  const Storage& w = *j.w;
  constexpr int64_t e = Tiles::kActBytes;
  const int64_t a_stride = j.act.block_bytes, step = Tiles::step_bytes(w);
  const char* a = j.act.data + m * a_stride + k0 * e;
  alignas(64) int32_t sums[32 * 32];
  if (w.group <= Tiles::kChunkK) {
    for (int64_t k = 0; k < kc; k += w.group) {
      dot_steps<Tiles, NA>(a + k * e, a_stride, b[0] + k * e * 16, b[1] + k * e * 16, w.group * e, step, nullptr,
                           false);
      store_sums<NA>(sums);
      flush_group<Tiles>(j, (k0 + k) / w.group, t, m, rows, sums, c);
    }
    return;
  }
  dot_steps<Tiles, NA>(a, a_stride, b[0], b[1], kc * e, step, partial, k0 > 0);
  if (k0 + kc < w.k_packed) return store_sums<NA>(partial);
  store_sums<NA>(sums);
  flush_group<Tiles>(j, 0, t, m, rows, sums, c);
}

// The B rows of a tile pair, step by step, in a ring of slots: converted kAhead steps before
// their tile loads, so that the conversion of later steps overlaps the tile dot products of
// earlier ones (each B row is used once here, by at most 16 rows). In a microbenchmark of this
// loop (int4, one row) the two overlapped to 10.7 cycles a word against 9.4 for the
// conversions and 4.4 for the tiles alone, alike for 1, 2, 4 or 8 steps ahead. Every word is
// read once per call, from DRAM in decode, so the words kStreamAhead bytes further on are
// prefetched as a step is converted.
template <class Tiles>
struct BRing {
  static constexpr int64_t kSlots = 4, kAhead = 2, kSlotBytes = 2048;
  const Tiles& tiles;
  const uint32_t* const (&tile)[2];
  int64_t ks, steps;  // k per step; steps in k_packed
  alignas(64) uint8_t slots[kSlots][kSlotBytes];
  const uint8_t* rows[kSlots][2];  // the B rows of each slot's step: in the slot, or in place

  BRing(const Tiles& t, const uint32_t* const (&tl)[2], int64_t k_per_step, const Storage& w)
      : tiles(t), tile(tl), ks(k_per_step), steps(w.k_packed / k_per_step) {
    for (int64_t s = 0; s < std::min(kAhead, steps); ++s) convert(s);
  }
  // k per step: a constant where the tiles fix it, so that a step's conversion unrolls.
  int64_t step_k() const {
    if constexpr (Tiles::kStepK > 0) return Tiles::kStepK;
    return ks;
  }
  void convert(int64_t s) {
    const int64_t k = step_k(), bytes = k / Tiles::kKPerWord * 64;
    for (int i = 0; i < 2; ++i) {
      const char* words = reinterpret_cast<const char*>(tile[i]) + s * bytes;
#pragma GCC unroll 8
      for (int64_t line = 0; line < bytes; line += 64) prefetch_bytes(words + kStreamAhead + line, 64);
      rows[s % kSlots][i] = tiles.b_rows(tile[i], s * k, k, slots[s % kSlots] + i * kSlotBytes / 2);
    }
  }
  // Step s's B rows of tile i, after converting step s + kAhead.
  const uint8_t* take(int64_t s, int i) {
    if (i == 0 && s + kAhead < steps) convert(s + kAhead);
    compiler_barrier();
    return rows[s % kSlots][i];
  }
};

// One group of a tile pair for at most 16 rows (activations tmm4), over the steps [s0, s0 + n),
// its sums in tmm(2P) and tmm(2P + 1).
template <class Tiles, int P>
inline void group_steps(BRing<Tiles>& ring, const char* a, int64_t a_stride, int64_t s0, int64_t n) {
  const int64_t step_bytes = ring.ks * Tiles::kActBytes;
  if constexpr (P == 0) {
    _tile_zero(0);
    _tile_zero(1);
  } else {
    _tile_zero(2);
    _tile_zero(3);
  }
  for (int64_t s = s0; s < s0 + n; ++s) {
    const uint8_t* b0 = ring.take(s, 0);
    const uint8_t* b1 = ring.take(s, 1);
    _tile_loadd(6, b0, 64);
    _tile_loadd(7, b1, 64);
    _tile_loadd(4, a + s * step_bytes, a_stride);
    if constexpr (P == 0) {
      PAGEDINFER_TILE_DOT(Tiles, 0, 4, 6);
      PAGEDINFER_TILE_DOT(Tiles, 1, 4, 7);
    } else {
      PAGEDINFER_TILE_DOT(Tiles, 2, 4, 6);
      PAGEDINFER_TILE_DOT(Tiles, 3, 4, 7);
    }
  }
}

// The run kernel for units of at most 16 rows (decode and small batches): tile pairs one group
// at a time (per channel: one group over all k), with no chunks (no B row is used twice). The
// groups alternate between two pairs of sum tiles, and a group's sums are flushed after the
// next group's steps were issued, so that the tile unit need not wait for one group's stores
// and flush before it starts the next (docs/design/gemm.md).
template <class Tiles>
void run_tiles_few_rows(const GemmJob& j, int64_t t_begin, int64_t t_end, int64_t m0, int64_t rows) {
  const Storage& w = *j.w;
  const EpilogueFn epilogue = epilogue_for<A>(j.y_dtype);
  const int64_t step = Tiles::step_bytes(w);
  const TileConfig config(step, rows);
  const Tiles tiles;
  compiler_barrier();
  _tile_loadconfig(&config);
  alignas(64) float c[kAmxRows * 32];
  alignas(64) int32_t sums[2][kAmxRows * 32];
  const char* a = j.act.data + m0 * j.act.block_bytes;
  const int64_t a_stride = j.act.block_bytes;
  for (int64_t t = t_begin; t < t_end; t += 2) {
    const uint32_t* const tile[2] = {w.tile(t), w.tile(t + 1)};
    BRing<Tiles> ring(tiles, tile, step / Tiles::kActBytes, w);
    const int64_t n = w.group / ring.ks;  // steps per group
    for (int64_t g = 0; g < w.groups; ++g) {
      if (g % 2 == 0) {
        group_steps<Tiles, 0>(ring, a, a_stride, g * n, n);
        _tile_stored(0, sums[0], 128);
        _tile_stored(1, sums[0] + 16, 128);
      } else {
        group_steps<Tiles, 1>(ring, a, a_stride, g * n, n);
        _tile_stored(2, sums[1], 128);
        _tile_stored(3, sums[1] + 16, 128);
      }
      if (g > 0) flush_group<Tiles>(j, g - 1, t, m0, rows, sums[(g - 1) % 2], c);
    }
    flush_group<Tiles>(j, w.groups - 1, t, m0, rows, sums[(w.groups - 1) % 2], c);
    epilogue(j, c, 2, t, m0, int(rows));
  }
  _tile_release();
}

// The run kernel: pairs of tiles, kSuperRows rows at a time, their weights chunk by chunk.
template <class Tiles>
void run_tiles(const GemmJob& j, int64_t t_begin, int64_t t_end, int64_t m_begin, int64_t m_end) {
  if (m_end - m_begin <= kAmxRows) return run_tiles_few_rows<Tiles>(j, t_begin, t_end, m_begin, m_end - m_begin);
  const Storage& w = *j.w;
  const EpilogueFn epilogue = epilogue_for<A>(j.y_dtype);
  const TileConfig config(Tiles::step_bytes(w), kAmxRows);
  const Tiles tiles;
  compiler_barrier();
  _tile_loadconfig(&config);
  alignas(64) float c[kSuperRows * 32];
  alignas(64) int32_t partial[kSuperRows * 32];
  alignas(64) uint8_t panel[2][std::max<int64_t>(Tiles::kPanelBytes, 64)];
  for (int64_t t = t_begin; t < t_end; t += 2) {
    for (int64_t m0 = m_begin; m0 < m_end; m0 += kSuperRows) {
      const int64_t rows = std::min(kSuperRows, m_end - m0);
      for (int64_t k0 = 0; k0 < w.k_packed; k0 += Tiles::kChunkK) {
        const int64_t kc = std::min(Tiles::kChunkK, w.k_packed - k0);
        const uint8_t* const b[2] = {tiles.b_rows(w.tile(t), k0, kc, panel[0]),
                                     tiles.b_rows(w.tile(t + 1), k0, kc, panel[1])};
        compiler_barrier();
        // Rows past m_end (up to the next multiple of 16) are the workspace's padding or rows
        // of another unit: computed, never flushed or stored.
        for (int64_t r = 0; r < rows; r += 32) {
          const int64_t valid = std::min<int64_t>(32, rows - r);
          if (valid > 16) chunk_rows<Tiles, 2>(j, t, m0 + r, valid, k0, kc, b, partial + r * 32, c + r * 32);
          else chunk_rows<Tiles, 1>(j, t, m0 + r, valid, k0, kc, b, partial + r * 32, c + r * 32);
        }
      }
      epilogue(j, c, 2, t, m0, int(rows));
    }
  }
  _tile_release();
}

// Units of up to 16 rows configure their tiles to those rows (run_tiles_few_rows); more rows
// are read 16 or 32 at a time.
GemmKernel amx_kernel(int64_t m) {
  GemmKernel k;
  k.act_rows = 1;
  k.pad_rows = m <= kAmxRows ? 1 : int(kAmxRows);
  k.row_quantum = 32;  // run_tiles' blocks of 2 x 16 rows
  return k;
}

}  // namespace

GemmKernel gemm_amx_int8(const GemmCase& c) {
  GemmKernel k = amx_kernel(c.m);
  k.compute = ComputeType::i8;
  k.unit = LinearUnit::amx_int8;
  k.prepare = avx512_int8_prepare(c.w->format.bits, c.x);
  k.run = c.w->format.bits == 4 ? &run_tiles<Int8Tiles<4>> : &run_tiles<Int8Tiles<8>>;
  return k;
}

GemmKernel gemm_amx_bf16(const GemmCase& c) {
  GemmKernel k = amx_kernel(c.m);
  k.compute = ComputeType::bf16;
  k.unit = LinearUnit::amx_bf16;
  k.prepare = &Prepare<A, DType::bf16>::bf16;
  k.run = c.w->format.bits == 4 ? &run_tiles<Bf16Tiles<Int4Pairs>> : &run_tiles<Bf16Tiles<Int8Pairs>>;
  return k;
}

}  // namespace pagedinfer::detail
