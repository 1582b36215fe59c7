// Lossless importers of the checkpoint formats of AWQ, GPTQ and llama.cpp (Q4_0, Q8_0).
// Each copies the integers and the fp16 scale bits unchanged; only the layout changes.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "common/check.hpp"
#include "quant/layout.hpp"

namespace pagedinfer {

using Storage = QuantizedWeight::Storage;

namespace {

uint32_t field(int32_t word, int index, int bits) {
  return (uint32_t(word) >> (index * bits)) & ((1u << bits) - 1u);
}

void check_pointer(const void* p, const char* where, const char* name) {
  PAGEDINFER_CHECK(p != nullptr, where, name, " is null");
}

}  // namespace

QuantizedWeight import_awq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales, int64_t n,
                           int64_t k, int32_t group_size) {
  constexpr const char* where = "import_awq";
  check_pointer(qweight, where, "qweight");
  check_pointer(qzeros, where, "qzeros");
  check_pointer(scales, where, "scales");
  PAGEDINFER_CHECK(n % 8 == 0, where, "n = ", n, " must be a multiple of 8 (8 columns per int32)");
  PAGEDINFER_CHECK(group_size > 0, where, "group_size = ", group_size, " must be 32, 64 or 128");
  auto s = detail::new_storage(where, n, k, QuantFormat{4, group_size, QuantZero::zero_point}, false);
  // Nibble p of a word holds column 8j + kAwqOrder[p] (AutoAWQ's AWQ_ORDER, undone by its
  // AWQ_REVERSE_ORDER when it dequantizes).
  static constexpr int kAwqOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};
  const int64_t words = n / 8;
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < words; ++j)
      for (int p = 0; p < 8; ++p) s->set_q(8 * j + kAwqOrder[p], i, field(qweight[i * words + j], p, 4));
  for (int64_t g = 0; g < s->groups; ++g) {
    for (int64_t j = 0; j < words; ++j)
      for (int p = 0; p < 8; ++p) s->zeros[s->param(8 * j + kAwqOrder[p], g)] = uint16_t(field(qzeros[g * words + j], p, 4));
    for (int64_t col = 0; col < n; ++col) s->scales[s->param(col, g)] = scales[g * n + col];
  }
  return QuantizedWeight(std::move(s));
}

QuantizedWeight import_gptq(const int32_t* qweight, const int32_t* qzeros, const uint16_t* scales,
                            const int32_t* g_idx, int64_t n, int64_t k, int32_t bits, int32_t group_size) {
  constexpr const char* where = "import_gptq";
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
  for (int64_t i = 0; i < k; ++i) {
    const int64_t packed = s->packed_k(i);
    for (int64_t j = 0; j < n; ++j) s->set_q(j, packed, field(qweight[(i / per_word) * n + j], int(i % per_word), bits));
  }
  // v1 convention: the stored zero is z - 1 (so z = 0 wraps, and reads back as 2^bits).
  const int64_t zero_words = n / per_word;
  for (int64_t g = 0; g < s->groups; ++g) {
    for (int64_t j = 0; j < zero_words; ++j)
      for (int p = 0; p < per_word; ++p)
        s->zeros[s->param(j * per_word + p, g)] = uint16_t(field(qzeros[g * zero_words + j], p, bits) + 1);
    for (int64_t col = 0; col < n; ++col) s->scales[s->param(col, g)] = scales[g * n + col];
  }
  return QuantizedWeight(std::move(s));
}

namespace {

// llama.cpp: blocks of 32 along k with an fp16 scale first; `values(block, j)` gives q of
// element j as stored (unsigned for Q4_0, two's complement byte for Q8_0).
template <class Values>
QuantizedWeight import_blocks(const char* where, const void* blocks, int64_t n, int64_t k, int bits,
                              int64_t block_bytes, Values values) {
  check_pointer(blocks, where, "blocks");
  PAGEDINFER_CHECK(k % 32 == 0, where, "k = ", k, " must be a multiple of 32 (the block size)");
  auto s = detail::new_storage(where, n, k, QuantFormat{bits, 32, QuantZero::symmetric}, false);
  const auto* bytes = static_cast<const uint8_t*>(blocks);
  for (int64_t row = 0; row < n; ++row)
    for (int64_t b = 0; b < k / 32; ++b) {
      const uint8_t* block = bytes + (row * (k / 32) + b) * block_bytes;
      uint16_t d;
      std::memcpy(&d, block, 2);
      s->scales[s->param(row, b)] = d;
      for (int j = 0; j < 32; ++j) s->set_q(row, b * 32 + j, values(block + 2, j));
    }
  return QuantizedWeight(std::move(s));
}

}  // namespace

QuantizedWeight import_q4_0(const void* blocks, int64_t n, int64_t k) {
  // Q4_0 stores q with the zero at 8, which is the symmetric int4 form exactly.
  return import_blocks("import_q4_0", blocks, n, k, 4, 18, [](const uint8_t* qs, int j) {
    return j < 16 ? uint32_t(qs[j] & 15) : uint32_t(qs[j - 16] >> 4);
  });
}

QuantizedWeight import_q8_0(const void* blocks, int64_t n, int64_t k) {
  // Q8_0 stores signed q; the symmetric int8 form stores q + 128.
  return import_blocks("import_q8_0", blocks, n, k, 8, 34, [](const uint8_t* qs, int j) {
    return uint32_t(int32_t(int8_t(qs[j])) + 128);
  });
}

}  // namespace pagedinfer
