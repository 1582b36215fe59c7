// Panel kernels for many rows (AVX-512 BF16), and the group parameters the other AVX-512
// kernels share (their dot products are in common/simd/x86_avx512_dot.hpp); included only by
// x86_avx512_bf16.cpp.
//
// Where turning q into the dot product's input costs more than the dot products themselves
// (int8 for bf16: four conversions and two merges per word, where the nibble-table path of
// Bf16Block doubles the dot products), a unit of NT tiles unpacks a chunk of k once into a
// panel on the stack, and every row block of the unit (up to kPanelRows rows) then runs on
// it. A panel unit is what one dot product takes per lane (a pair of bf16: 4 bytes), matching
// one ActLayout unit. The same for int4 on VNNI measured slower than unpacking in registers
// (VnniBlock): two masks per word are cheaper than the panel's extra pass.
#pragma once
#include <algorithm>

#include "common/simd/x86_avx512.hpp"
#include "common/simd/x86_avx512_dot.hpp"
#include "gemm/blocks.hpp"

namespace pagedinfer::detail {
namespace {

// body(g, begin, end, group_ends) for each run of units [begin, end) of [first, last) inside
// one group g; group_ends when the run reaches the group's last unit.
template <class Body>
void for_group_runs(int64_t units_per_group, int64_t first, int64_t last, Body&& body) {
  for (int64_t u = first; u < last;) {
    const int64_t g = u / units_per_group, group_end = (g + 1) * units_per_group;
    const int64_t stop = std::min(group_end, last);
    body(g, u, stop, stop == group_end);
    u = stop;
  }
}

// The panel of one tile block: unit u (from the chunk's first) of tile i at [(u * NT + i) * 16].
constexpr int64_t kPanelBytes = 32 << 10;  // with the activations' chunk, well inside L1 + L2
// Rows that one unpacked panel serves (their accumulators, 36 KiB at 8 x 2, on the stack): 144
// measured 8% faster than 48 on W8A16 M = 512 (the unpacking amortized over 3x the rows).
constexpr int64_t kPanelRows = 144;

// Unpacker: fills the panel for tiles t0.. and units [first, last) of the weight.
// int8 words -> bf16 pairs: unit 2j holds k (0, 1) of word j, unit 2j + 1 holds k (2, 3), both
// exact (integers below 256 have 8 significant bits); natural activation order.
struct Int8ToBf16 {
  static constexpr int kUnitsPerWord = 2;
  template <int NT>
  static void unpack(const QuantizedWeight::Storage& w, int64_t t0, int64_t first, int64_t last, __m512i* panel) {
    const __m512i byte = _mm512_set1_epi32(0xff), high_half = _mm512_set1_epi32(int32_t(0xffff0000u));
    const auto as_float_bits = [](__m512i v) { return _mm512_castps_si512(_mm512_cvtepi32_ps(v)); };
    for (int i = 0; i < NT; ++i) {
      const uint32_t* tile = w.tile(t0 + i);
      for (int64_t j = first / 2; j < last / 2; ++j) {
        const __m512i word = _mm512_loadu_si512(tile + j * kTile);
        const __m512i f0 = as_float_bits(_mm512_and_si512(word, byte));
        const __m512i f1 = as_float_bits(_mm512_and_si512(_mm512_srli_epi32(word, 8), byte));
        const __m512i f2 = as_float_bits(_mm512_and_si512(_mm512_srli_epi32(word, 16), byte));
        const __m512i f3 = as_float_bits(_mm512_srli_epi32(word, 24));
        // (low half: bf16 of f0, high half: bf16 of f1); the floats' low 16 bits are zero.
        panel[(2 * j - first) * NT + i] = _mm512_ternarylogic_epi32(_mm512_srli_epi32(f0, 16), f1, high_half, 0xf8);
        panel[(2 * j + 1 - first) * NT + i] = _mm512_ternarylogic_epi32(_mm512_srli_epi32(f2, 16), f3, high_half, 0xf8);
      }
    }
  }
};

// The group params of blocks.hpp for one tile, vectorized.
struct GroupParams {
  __m512 scale, offset;
  GroupParams(const QuantizedWeight::Storage& w, int64_t g, int64_t t) {
    const int64_t base = w.param(t * kTile, g);
    scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.scales.data() + base)));
    switch (w.format.zero) {
      case QuantZero::symmetric: offset = _mm512_mul_ps(scale, _mm512_set1_ps(-float(1 << (w.format.bits - 1)))); break;
      case QuantZero::zero_point: {
        const __m512i z = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.zeros.data() + base)));
        offset = _mm512_mul_ps(scale, _mm512_sub_ps(_mm512_setzero_ps(), _mm512_cvtepi32_ps(z)));
        break;
      }
      case QuantZero::float_offset:
        offset = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.zeros.data() + base)));
        break;
    }
  }
  // c += sum * scale (+ offset * act_sum once the group's last unit is in); first: c = ...,
  // without reading c.
  void flush(float* c, __m512 sum, bool group_ends, float act_sum, bool first = false) const {
    __m512 v = first ? _mm512_mul_ps(sum, scale) : _mm512_fmadd_ps(sum, scale, _mm512_load_ps(c));
    if (group_ends) v = _mm512_fmadd_ps(offset, _mm512_set1_ps(act_sum), v);
    _mm512_store_ps(c, v);
  }
};

template <class Unpack, class Dot>
struct PanelBlock {
  // The R x NT block at (t0, m0) of a layout of S rows over panel units [first, last).
  template <int R, int NT, int S>
  static void run(const GemmJob& j, int64_t t0, int64_t m0, int64_t first, int64_t last, const __m512i* panel,
                  float* c) {
    const auto& w = *j.w;
    const char* act = j.act.unit(m0, 0);  // S rows interleaved: unit u of row r at (u * S + r) * 4
    const int64_t units_per_group = w.group / (w.kpw() / Unpack::kUnitsPerWord);
    for_group_runs(units_per_group, first, last, [&](int64_t g, int64_t begin, int64_t end, bool group_ends) {
      typename Dot::Acc acc[R][NT];
      for (auto& a : acc)
        for (auto& v : a) v = Dot::zero();
      for (int64_t u = begin; u < end; ++u) {
        const __m512i* wu = panel + (u - first) * NT;
        for (int r = 0; r < R; ++r) {
          int32_t x32;
          std::memcpy(&x32, act + (u * S + r) * 4, 4);
          const __m512i x = _mm512_set1_epi32(x32);
          for (int i = 0; i < NT; ++i) acc[r][i] = Dot::dot(acc[r][i], wu[i], x);
        }
      }
      for (int i = 0; i < NT; ++i) {
        const GroupParams gp(w, g, t0 + i);
        for (int r = 0; r < R; ++r)
          gp.flush(c + (r * NT + i) * kTile, Dot::to_float(acc[r][i]), group_ends, j.act_sums[(m0 + r) * w.groups + g]);
      }
    });
  }
};

template <class Unpack, int NT>
void prefetch_words(const QuantizedWeight::Storage& w, int64_t t0, int64_t first, int64_t last) {
  for (int i = 0; i < NT; ++i)
    for (int64_t j = first / Unpack::kUnitsPerWord; j < last / Unpack::kUnitsPerWord; ++j)
      _mm_prefetch(reinterpret_cast<const char*>(w.tile(t0 + i) + j * kTile), _MM_HINT_T1);
}

// run_blocks (blocks.hpp) for panel kernels, on up to kPanelRows rows: k in chunks that fill the
// panel (whole groups where the format has groups), each chunk unpacked once per tile block and
// used by every row block of the rows.
template <class Unpack, class Dot, int MR, int NT>
void run_panel_rows(const GemmJob& j, int64_t t_begin, int64_t t_end, int64_t m_begin, int64_t m_end) {
  static_assert(kMaxBlockRows % MR == 0, "rows per block must divide the workspace padding");
  constexpr int64_t kBlock = MR * NT * kTile, kPanelUnits = kPanelBytes / (NT * 64);
  constexpr int64_t kMaxRowBlocks = (kPanelRows + MR - 1) / MR;
  alignas(64) float c[kMaxRowBlocks * kUnitTiles / NT * kBlock];
  alignas(64) __m512i panel[kPanelUnits * NT];
  const auto& w = *j.w;
  const int64_t units = w.k_words() * Unpack::kUnitsPerWord;
  const int64_t units_per_group = w.group / (w.kpw() / Unpack::kUnitsPerWord);
  const int64_t chunk = units_per_group <= kPanelUnits ? kPanelUnits / units_per_group * units_per_group : kPanelUnits;
  const int64_t row_blocks = (m_end - m_begin + MR - 1) / MR, tile_blocks = (t_end - t_begin) / NT;
  std::fill(c, c + row_blocks * tile_blocks * kBlock, 0.f);
  for (int64_t first = 0; first < units; first += chunk) {
    const int64_t last = std::min(units, first + chunk);
    for (int64_t tb = 0; tb < tile_blocks; ++tb) {
      Unpack::template unpack<NT>(w, t_begin + tb * NT, first, last, panel);
      // The unpack is a burst of loads with nothing to overlap: have the next chunk's words
      // (a few KiB per tile, too short for the hardware prefetcher) in L2 by then.
      prefetch_words<Unpack, NT>(w, t_begin + tb * NT, last, std::min(units, last + chunk));
      for (int64_t rb = 0; rb < row_blocks; ++rb) {
        const int64_t m = m_begin + rb * MR;
        with_block_rows<MR>(m_end - m, [&](auto rows) {
          PanelBlock<Unpack, Dot>::template run<decltype(rows)::value, NT, MR>(j, t_begin + tb * NT, m, first, last,
                                                                               panel, c + (tb * row_blocks + rb) * kBlock);
        });
      }
    }
  }
  const EpilogueFn epilogue = epilogue_for<Avx512Arch>(j.y_dtype);
  for (int64_t tb = 0; tb < tile_blocks; ++tb)
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      const int64_t m = m_begin + rb * MR;
      epilogue(j, c + (tb * row_blocks + rb) * kBlock, NT, t_begin + tb * NT, m, int(std::min<int64_t>(MR, m_end - m)));
    }
}

// The run kernel: the unit's rows in slices of kPanelRows (the accumulators of a slice live on
// the stack).
template <class Unpack, class Dot, int MR, int NT>
void run_panel_blocks(const GemmJob& j, int64_t t_begin, int64_t t_end, int64_t m_begin, int64_t m_end) {
  for (int64_t m = m_begin; m < m_end; m += kPanelRows)
    run_panel_rows<Unpack, Dot, MR, NT>(j, t_begin, t_end, m, std::min(m_end, m + kPanelRows));
}

}  // namespace
}  // namespace pagedinfer::detail
