// Lossless importers of the checkpoint formats of AWQ, GPTQ and llama.cpp (Q4_0, Q8_0).
// Each copies the integers and the fp16 scale bits unchanged; only the layout changes.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <vector>

#include "common/check.hpp"
#include "quant/layout.hpp"
#include "quant/pack.hpp"

namespace pagedinfer {

using Storage = QuantizedWeight::Storage;

namespace {

uint32_t field(int32_t word, int index, int bits) {
  return (uint32_t(word) >> (index * bits)) & ((1u << bits) - 1u);
}

// A tile's columns of a k-major GPTQ qweight ([k * kBits / 32][n] words, column j at
// qweight[w * n + j]) unpacked to values[l * k + i], reading the source forward.
template <int kBits>
void unpack_k_major(const int32_t* qweight, int64_t n, int64_t lanes, int64_t k, uint8_t* values) {
  constexpr int kPerWord = 32 / kBits;
  for (int64_t w = 0; w < k / kPerWord; ++w)
    for (int64_t l = 0; l < lanes; ++l) {
      const auto word = uint32_t(qweight[w * n + l]);
      uint8_t* out = values + l * k + w * kPerWord;
#pragma GCC unroll 8
      for (int e = 0; e < kPerWord; ++e) out[e] = uint8_t((word >> (e * kBits)) & ((1u << kBits) - 1u));
    }
}

void check_pointer(const void* p, const char* where, const char* name) {
  PAGEDINFER_CHECK(p != nullptr, where, name, " is null");
}

}  // namespace

QuantizedWeight import_awq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales, int64_t n,
                           int64_t k, int32_t group_size, int num_threads) {
  constexpr const char* where = "import_awq";
  check_pointer(qweight, where, "qweight");
  check_pointer(qzeros, where, "qzeros");
  check_pointer(scales, where, "scales");
  detail::check_num_threads(num_threads, where, "num_threads");
  PAGEDINFER_CHECK(n % 8 == 0, where, "n = ", n, " must be a multiple of 8 (8 columns per int32)");
  PAGEDINFER_CHECK(group_size > 0, where, "group_size = ", group_size, " must be 32, 64 or 128");
  auto s = detail::new_storage(where, n, k, QuantFormat{4, group_size, QuantZero::zero_point}, false);
  // Nibble p of a word holds column 8j + AWQ_ORDER[p], AWQ_ORDER = {0, 2, 4, 6, 1, 3, 5, 7}
  // (AutoAWQ undoes it with AWQ_REVERSE_ORDER when it dequantizes): column c is in nibble
  // kNibbleOfColumn[c % 8].
  static constexpr int kNibbleOfColumn[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  const int64_t words = n / 8;
  auto nibble = [&](const int32_t* packed, int64_t row, int64_t col) {
    return field(packed[row * words + col / 8], kNibbleOfColumn[col % 8], 4);
  };
  detail::pack_q<detail::SourceOrder::k_major>(*s, n, k, num_threads,
                                                [&](int64_t col, int64_t i) { return nibble(qweight, i, col); });
  detail::for_each_tile(*s, num_threads, [&](int64_t t) {
    for (int64_t col = t * Storage::kTileN; col < std::min(n, (t + 1) * Storage::kTileN); ++col)
      for (int64_t g = 0; g < s->groups; ++g) {
        s->zeros[s->param(col, g)] = uint16_t(nibble(qzeros, g, col));
        s->scales[s->param(col, g)] = scales[g * n + col];
      }
  });
  return QuantizedWeight(std::move(s));
}

QuantizedWeight import_gptq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales,
                            const int32_t* g_idx, int64_t n, int64_t k, int32_t bits, int32_t group_size,
                            int num_threads) {
  constexpr const char* where = "import_gptq";
  detail::check_num_threads(num_threads, where, "num_threads");
  check_pointer(qweight, where, "qweight");
  check_pointer(qzeros, where, "qzeros");
  check_pointer(scales, where, "scales");
  PAGEDINFER_CHECK(bits == 4 || bits == 8, where, "bits = ", bits, " must be 4 or 8");
  const int per_word = 32 / bits;
  PAGEDINFER_CHECK(n % per_word == 0, where, "n = ", n, " must be a multiple of ", per_word, " (zeros per int32)");
  PAGEDINFER_CHECK(k % per_word == 0, where, "k = ", k, " must be a multiple of ", per_word, " (rows per int32)");
  PAGEDINFER_CHECK(group_size > 0, where, "group_size = ", group_size, " must be 32, 64 or 128");
  auto s = detail::new_storage(where, n, k, QuantFormat{bits, group_size, QuantZero::zero_point}, false);

  // Act-order: sort k by group (stable), so each group is a contiguous run of packed k.
  if (g_idx) {
    std::vector<int64_t> count(size_t(s->groups), 0);
    for (int64_t i = 0; i < k; ++i) {
      PAGEDINFER_CHECK(g_idx[i] >= 0 && g_idx[i] < s->groups, where, "g_idx[", i, "] = ", g_idx[i],
                       " is outside [0, ", s->groups, ")");
      ++count[g_idx[i]];
    }
    for (int64_t g = 0; g < s->groups; ++g)
      PAGEDINFER_CHECK(count[g] == group_size, where, "g_idx: group ", g, " has ", count[g],
                       " members; every group must have group_size = ", group_size);
    std::vector<int32_t> order(static_cast<size_t>(k));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return g_idx[a] < g_idx[b]; });
    bool identity = true;
    for (int64_t i = 0; i < k; ++i) identity = identity && order[i] == i;
    if (!identity) {
      s->k_order = std::move(order);
      s->index_k_order();
    }
  }
  // Per tile: unpack its 16 columns in source order (reading the k-major source forward), then
  // pack in the packed k order.
  const int32_t* order = s->k_order.empty() ? nullptr : s->k_order.data();
  const int64_t zero_words = n / per_word;
  detail::for_each_tile(*s, num_threads, [&](int64_t t) {
    const int64_t first = t * Storage::kTileN, lanes = std::min<int64_t>(Storage::kTileN, n - first);
    if (lanes <= 0) return;
    std::vector<uint8_t> values(size_t(lanes * k));
    if (bits == 4) {
      unpack_k_major<4>(qweight + first, n, lanes, k, values.data());
      detail::pack_tile_bits<4>(*s, t, lanes, values.data(), k, order);
    } else {
      unpack_k_major<8>(qweight + first, n, lanes, k, values.data());
      detail::pack_tile_bits<8>(*s, t, lanes, values.data(), k, order);
    }
    // v1 convention: the stored zero is z - 1 (so z = 0 wraps, and reads back as 2^bits).
    for (int64_t col = first; col < first + lanes; ++col)
      for (int64_t g = 0; g < s->groups; ++g) {
        s->zeros[s->param(col, g)] = uint16_t(field(qzeros[g * zero_words + col / per_word], int(col % per_word), bits) + 1);
        s->scales[s->param(col, g)] = scales[g * n + col];
      }
  });
  return QuantizedWeight(std::move(s));
}

namespace {

// llama.cpp: blocks of 32 along k with an fp16 scale first; `values(block, j)` gives q of
// element j as stored (unsigned for Q4_0, two's complement byte for Q8_0).
template <class Values>
QuantizedWeight import_blocks(const char* where, const void* blocks, int64_t n, int64_t k, int bits,
                              int64_t block_bytes, int num_threads, Values values) {
  check_pointer(blocks, where, "blocks");
  detail::check_num_threads(num_threads, where, "num_threads");
  PAGEDINFER_CHECK(k % 32 == 0, where, "k = ", k, " must be a multiple of 32 (the block size)");
  auto s = detail::new_storage(where, n, k, QuantFormat{bits, 32, QuantZero::symmetric}, false);
  const auto* bytes = static_cast<const uint8_t*>(blocks);
  auto block = [&](int64_t row, int64_t b) { return bytes + (row * (k / 32) + b) * block_bytes; };
  detail::pack_q<detail::SourceOrder::n_major>(*s, n, k, num_threads, [&](int64_t row, int64_t i) {
    return values(block(row, i / 32) + 2, int(i % 32));
  });
  detail::for_each_tile(*s, num_threads, [&](int64_t t) {
    for (int64_t row = t * Storage::kTileN; row < std::min(n, (t + 1) * Storage::kTileN); ++row)
      for (int64_t b = 0; b < k / 32; ++b) std::memcpy(&s->scales[s->param(row, b)], block(row, b), 2);
  });
  return QuantizedWeight(std::move(s));
}

}  // namespace

QuantizedWeight import_q4_0(const void* blocks, int64_t n, int64_t k, int num_threads) {
  // Q4_0 stores q with the zero at 8, which is the symmetric int4 form exactly.
  return import_blocks("import_q4_0", blocks, n, k, 4, 18, num_threads, [](const uint8_t* qs, int j) {
    return j < 16 ? uint32_t(qs[j] & 15) : uint32_t(qs[j - 16] >> 4);
  });
}

QuantizedWeight import_q8_0(const void* blocks, int64_t n, int64_t k, int num_threads) {
  // Q8_0 stores signed q; the symmetric int8 form stores q + 128.
  return import_blocks("import_q8_0", blocks, n, k, 8, 34, num_threads, [](const uint8_t* qs, int j) {
    return uint32_t(int32_t(int8_t(qs[j])) + 128);
  });
}

}  // namespace pagedinfer
