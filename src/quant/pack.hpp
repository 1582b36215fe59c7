// The write path of the packers: every q word composed in a register from its elements and
// stored once, tiles split over the threads (layout.hpp). Importers and load-time packing run
// at memory speed this way, where a read-modify-write per element (Storage::set_q) does not.
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/threading.hpp"
#include "quant/layout.hpp"

namespace pagedinfer::detail {

// body(t) for every column tile t of s, tiles split into one contiguous range per thread.
template <class Body>
void for_each_tile(const QuantizedWeight::Storage& s, int num_threads, Body&& body) {
  parallel_ranges(s.tiles(), num_threads, 4, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) body(t);
  });
}

// How a source stores its weight: row-major [n][k] (llama.cpp blocks, float weights) or
// k-major [k][n] (AWQ, GPTQ). Packing walks the source in its own order.
enum class SourceOrder { n_major, k_major };

// Fills q from element(p, i) (an unsigned value < 2^bits) for packed columns p < columns and
// packed k i < k_valid; the rest (padding) stays as allocated, 0. Within a tile (16 columns x
// k/8 words: 32 KiB at k = 4096, in cache meanwhile), an n-major source is read column by
// column along k, a k-major one k-word by k-word across the tile's columns: a forward stream
// either way.
template <int kBits, SourceOrder kOrder, class Element>
void pack_q_bits(QuantizedWeight::Storage& s, int64_t columns, int64_t k_valid, int num_threads,
                 const Element& element) {
  using Storage = QuantizedWeight::Storage;
  constexpr int kpw = 32 / kBits;
  const int64_t k_words = (k_valid + kpw - 1) / kpw;
  for_each_tile(s, num_threads, [&](int64_t t) {
    uint32_t* words = s.q.data() + t * s.k_words() * Storage::kTileN;
    const int64_t lanes = std::min<int64_t>(Storage::kTileN, columns - t * Storage::kTileN);
    auto pack_word = [&](int64_t l, int64_t j) {
      const int64_t p = t * Storage::kTileN + l, first = j * kpw;
      uint32_t word = 0;
      if (first + kpw <= k_valid) {
        for (int e = 0; e < kpw; ++e) word |= element(p, first + e) << Storage::shift_of(kBits, e);
      } else {  // the partial last word of a per-channel weight's padded k
        for (int e = 0; first + e < k_valid; ++e) word |= element(p, first + e) << Storage::shift_of(kBits, e);
      }
      words[j * Storage::kTileN + l] = word;
    };
    if (kOrder == SourceOrder::n_major) {
      for (int64_t l = 0; l < lanes; ++l)
        for (int64_t j = 0; j < k_words; ++j) pack_word(l, j);
    } else {
      for (int64_t j = 0; j < k_words; ++j)
        for (int64_t l = 0; l < lanes; ++l) pack_word(l, j);
    }
  });
}

// Packs tile t from its values unpacked to bytes: values[l * k + i] is q of the tile's column l
// at source k i, and packed k j holds source k order[j] (order null: the identity). For sources
// whose k order differs from the packed one (GPTQ act-order): the gather happens in this
// tile-sized buffer, in cache, rather than across the source.
template <int kBits, bool kOrdered>
void pack_tile_words(QuantizedWeight::Storage& s, int64_t t, int64_t lanes, const uint8_t* values, int64_t k,
                     const int32_t* order) {
  using Storage = QuantizedWeight::Storage;
  constexpr int kpw = 32 / kBits;
  uint32_t* words = s.q.data() + t * s.k_words() * Storage::kTileN;
  for (int64_t l = 0; l < lanes; ++l) {
    const uint8_t* column = values + l * k;
    for (int64_t j = 0; j < k / kpw; ++j) {
      uint32_t word = 0;
#pragma GCC unroll 8
      for (int e = 0; e < kpw; ++e) {  // constant shifts once unrolled
        const int64_t i = j * kpw + e;
        word |= uint32_t(column[kOrdered ? order[i] : i]) << Storage::shift_of(kBits, e);
      }
      words[j * Storage::kTileN + l] = word;
    }
  }
}

template <int kBits>
void pack_tile_bits(QuantizedWeight::Storage& s, int64_t t, int64_t lanes, const uint8_t* values, int64_t k,
                    const int32_t* order) {
  if (order) pack_tile_words<kBits, true>(s, t, lanes, values, k, order);
  else pack_tile_words<kBits, false>(s, t, lanes, values, k, nullptr);
}

template <SourceOrder kOrder, class Element>
void pack_q(QuantizedWeight::Storage& s, int64_t columns, int64_t k_valid, int num_threads, const Element& element) {
  if (s.format.bits == 4) return pack_q_bits<4, kOrder>(s, columns, k_valid, num_threads, element);
  if (s.format.bits == 16) return pack_q_bits<16, kOrder>(s, columns, k_valid, num_threads, element);
  pack_q_bits<8, kOrder>(s, columns, k_valid, num_threads, element);
}

}  // namespace pagedinfer::detail
