// Quantized GEMM with AMX tiles (Sapphire Rapids and later) for int8 activations, W8A8 and W4A8
// from 9 rows on (kAmxMinRows): one tile dot product (tdpbsud: s8 activations x u8 weights, exact
// int32 sums) multiplies 16 rows x 64 k by 64 k x 16 columns, 16 times the work of a VNNI
// vpdpbusd. The weights' packed layout (layout.hpp) already is the tiles' "B" form: 64 k of a
// 16-column tile are 16 k-words x 16 lanes, 1 KiB at a 64-byte stride; int8 words are read in
// place, int4 words are split into their two nibble bytes in a small panel first. Activations
// are row-major (ActLayout rows = 1): 16 rows x 64 k at the row stride are one "A" tile.
// Everything else (bf16 activations, fewer rows, other shapes) falls back to avx512_bf16.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "common/simd/x86_avx512.hpp"
#include "gemm/blocks.hpp"
#include "gemm/x86_avx512_prepare.hpp"
#include "gemm/x86_avx512_words.hpp"

namespace pagedinfer::detail {
namespace {

using Storage = QuantizedWeight::Storage;
using A = Avx512Arch;

constexpr int64_t kChunkK = 512;     // k per weight chunk: 2 tiles' chunk is 16 KiB, kept in L1
constexpr int64_t kSuperRows = 128;  // rows that share one chunk of weights
// From 9 rows, where the VNNI kernels leave their one-pass 8 x 2 blocks: measured on 14336 x
// 4096, 2 threads, against PAGEDINFER_MAX_ISA=avx512_bf16 (ms, AMX / VNNI): W8A8 M = 8 1.17 /
// 1.06, M = 9 1.11 / 1.44, M = 16 1.15 / 1.96, M = 64 2.08 / 5.73; W4A8 M = 8 1.21 / 0.91,
// M = 9 1.22 / 1.21, M = 16 1.21 / 1.82, M = 64 3.18 / 7.29.
constexpr int64_t kAmxMinRows = 9;

// k per tile dot product: 64, or 32 for groups of 32 (llama.cpp's Q4_0 / Q8_0) and per-channel
// k that 64 does not divide.
int64_t step_k(const Storage& w) { return w.group % 64 == 0 ? 64 : 32; }

// Tile registers (ldtilecfg's 64-byte format, palette 1): tmm0-3 the int32 sums of a block of
// 32 rows x 32 columns (rows 16 ra.., columns 16 cb..: tmm(2 ra + cb)), tmm4-5 activations of
// rows 0-15 and 16-31 (16 rows x `step` k), tmm6-7 the two weight tiles (step / 4 rows of 16
// columns x 4 k).
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t bytes_per_row[16] = {};
  uint8_t rows[16] = {};
  explicit TileConfig(int64_t step) {
    for (int t = 0; t < 8; ++t) {
      bytes_per_row[t] = t == 4 || t == 5 ? uint16_t(step) : 64;
      rows[t] = t >= 6 ? uint8_t(step / 4) : 16;
    }
  }
};

// GCC 12's tile loads are asm statements without a memory operand: this keeps the compiler
// from moving stores they read (the int4 panel, the tile config) past them.
inline void compiler_barrier() { asm volatile("" ::: "memory"); }

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

// The int32 sums of 16 NA rows x 32 columns over k [0, kn) in steps of `step`, into tmm0-3:
// started from zero, or from `partial` ([16 NA][32] int32) with `resume`. a: the rows' first k
// (row stride a_stride); b0, b1: the two weight tiles' B rows of that k (64 bytes per 4 k).
template <int NA>
inline void dot_steps(const char* a, int64_t a_stride, const uint8_t* b0, const uint8_t* b1, int64_t kn,
                      int64_t step, const int32_t* partial, bool resume) {
  if (resume) {
    _tile_loadd(0, partial, 128);
    _tile_loadd(1, partial + 16, 128);
    if constexpr (NA == 2) {
      _tile_loadd(2, partial + 16 * 32, 128);
      _tile_loadd(3, partial + 16 * 32 + 16, 128);
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
    _tile_dpbsud(0, 4, 6);
    _tile_dpbsud(1, 4, 7);
    if constexpr (NA == 2) {
      _tile_loadd(5, a + 16 * a_stride + k, a_stride);
      _tile_dpbsud(2, 5, 6);
      _tile_dpbsud(3, 5, 7);
    }
  }
}

// Stores tmm0-3 as [16 NA][32] int32.
template <int NA>
inline void store_sums(int32_t* sums) {
  _tile_stored(0, sums, 128);
  _tile_stored(1, sums + 16, 128);
  if constexpr (NA == 2) {
    _tile_stored(2, sums + 16 * 32, 128);
    _tile_stored(3, sums + 16 * 32 + 16, 128);
  }
}

// c (+)= the group's sums scaled (kernel.hpp's formula) for 16 NA rows x tiles t, t + 1.
template <int NA>
inline void flush_group(const GemmJob& j, int64_t g, int64_t t, int64_t m, const int32_t* sums, float* c) {
  const Storage& w = *j.w;
  for (int cb = 0; cb < 2; ++cb) {
    const GroupParams gp(w, g, t + cb);
    for (int r = 0; r < 16 * NA; ++r) {
      const __m512 sum = _mm512_cvtepi32_ps(_mm512_load_si512(sums + r * 32 + cb * 16));
      gp.flush(c + r * 32 + cb * 16, sum, j.act_sums[(m + r) * w.groups + g], g > 0);
    }
  }
}

// Tiles t, t + 1 over the chunk [k0, k0 + kc) (b: its B rows per tile) for 16 NA rows from m
// into c ([16 NA][32] float). A group lies inside one chunk, or is all of k (per channel): its
// int32 sums then wait in `partial` between chunks.
template <int NA>
void chunk_rows(const GemmJob& j, int64_t t, int64_t m, int64_t k0, int64_t kc, const uint8_t* const (&b)[2],
                int32_t* partial, float* c) {
  const Storage& w = *j.w;
  const int64_t a_stride = j.act.block_bytes, step = step_k(w);
  const char* a = j.act.data + m * a_stride + k0;
  alignas(64) int32_t sums[32 * 32];
  if (w.group <= kChunkK) {
    for (int64_t k = 0; k < kc; k += w.group) {
      dot_steps<NA>(a + k, a_stride, b[0] + k * 16, b[1] + k * 16, w.group, step, nullptr, false);
      store_sums<NA>(sums);
      flush_group<NA>(j, (k0 + k) / w.group, t, m, sums, c);
    }
    return;
  }
  dot_steps<NA>(a, a_stride, b[0], b[1], kc, step, partial, k0 > 0);
  if (k0 + kc < w.k_packed) return store_sums<NA>(partial);
  store_sums<NA>(sums);
  flush_group<NA>(j, 0, t, m, sums, c);
}

// The run kernel: pairs of tiles, kSuperRows rows at a time, their weights chunk by chunk.
template <int BITS>
void run_tiles(const GemmJob& j, int64_t t_begin, int64_t t_end, int64_t m_begin, int64_t m_end) {
  const Storage& w = *j.w;
  const EpilogueFn epilogue = epilogue_for<A>(j.y_dtype);
  const TileConfig config(step_k(w));
  compiler_barrier();
  _tile_loadconfig(&config);
  alignas(64) float c[kSuperRows * 32];
  alignas(64) int32_t partial[kSuperRows * 32];
  alignas(64) uint8_t panel[BITS == 4 ? 2 * kChunkK * 16 : 64];
  for (int64_t t = t_begin; t < t_end; t += 2) {
    for (int64_t m0 = m_begin; m0 < m_end; m0 += kSuperRows) {
      const int64_t rows = std::min(kSuperRows, m_end - m0);
      for (int64_t k0 = 0; k0 < w.k_packed; k0 += kChunkK) {
        const int64_t kc = std::min(kChunkK, w.k_packed - k0);
        const uint8_t* b[2];
        for (int cb = 0; cb < 2; ++cb) {
          if constexpr (BITS == 8) {
            b[cb] = reinterpret_cast<const uint8_t*>(w.tile(t + cb) + k0 / 4 * kTile);
          } else {
            uint8_t* p = panel + cb * kChunkK * 16;
            unpack_int4(w.tile(t + cb) + k0 / 8 * kTile, kc / 8, p);
            b[cb] = p;
          }
        }
        compiler_barrier();
        // Rows past m_end (up to the next multiple of 16) are the workspace's padding or rows
        // of another unit: computed, never stored.
        for (int64_t r = 0; r < rows; r += 32) {
          if (rows - r > 16) chunk_rows<2>(j, t, m0 + r, k0, kc, b, partial + r * 32, c + r * 32);
          else chunk_rows<1>(j, t, m0 + r, k0, kc, b, partial + r * 32, c + r * 32);
        }
      }
      epilogue(j, c, 2, t, m0, int(rows));
    }
  }
  _tile_release();
}

}  // namespace

GemmKernel gemm_kernel_amx(const Storage& w, LinearActivations mode, DType x, int64_t m) {
  GemmKernel k;
  // Whole steps of k, and groups that a chunk holds whole, or one group (per channel).
  const bool shape = w.group % 32 == 0 && (kChunkK % w.group == 0 || w.group == w.k_packed);
  if (mode != LinearActivations::int8_per_token || m < kAmxMinRows || !shape) return k;
  k.compute = ComputeType::i8;
  k.prepare = avx512_int8_prepare(w.format.bits, x);
  k.run = w.format.bits == 4 ? &run_tiles<4> : &run_tiles<8>;
  k.act_rows = 1;
  k.pad_rows = int(kAmxRows);
  k.row_quantum = 32;  // run_tiles' blocks of 2 x 16 rows
  return k;
}

}  // namespace pagedinfer::detail
