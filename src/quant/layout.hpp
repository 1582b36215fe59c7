// The packed layout of a QuantizedWeight: the one definition that packers, importers, the file
// format and every kernel read, so they cannot drift.
//
// Columns (output features) are packed in tiles of 16, one 32-bit lane each, so one AVX-512
// register holds one k-word of a whole tile. Along k, a tile is a contiguous run of words:
//   word (tile t, k-word j, lane l) at q[(t * k_words + j) * 16 + l]
// A word holds the kpw = 32 / bits consecutive packed k of its column:
//   16-bit (unquantized bf16 / fp16 values): element e (0, 1) in bits 16e..16e + 15: a word is
//         the pair of k that a bf16 dot product (vdpbf16ps) or an AMX bf16 tile row takes.
//   int8: element e (0..3) in byte e.
//   int4: element e (0..7) at bit 16 * (e % 2) + 4 * (e / 2). So 16-bit shifts by 4j bring the
//         pair (2j, 2j + 1) to the low nibble of each half (bf16 pair kernels), and the masks
//         0x0f0f0f0f of w and w >> 4 give the bytes (0, 4, 1, 5) and (2, 6, 3, 7) (VNNI kernels).
// Packed k: for act-order weights, position i holds source column k_order[i]; k is padded with
// q = 0 to a multiple of 8 (per-channel only; grouped k is a multiple of the group >= 32). An
// act-order weight may also carry padding inside its groups (k_order -1, q = 0): a row-parallel
// shard (shard.cpp) keeps each source group's members together and pads each run to whole groups,
// so its k_packed exceeds k; kernels read x = 0 there.
// Packed columns: column p holds weight row p, except for gate_up weights, where tiles
// alternate gate and up (tile 2t = gate rows 16t.., tile 2t + 1 = up rows n/2 + 16t..), so a
// kernel holding two neighbouring tiles can apply SiLU(gate) * up before storing.
// n_packed is a multiple of 4 tiles, so column blocks of 1, 2 or 4 tiles never need a tail.
// Padding columns have q = 0 and scale 0, so they compute 0.
// Group params by tile, then group, then lane ([n_packed / 16][groups][16]), so a kernel walking
// a tile along k reads them as one more sequential stream: fp16 scales; fp16 m (float_offset)
// or uint16 z (zero_point). Unquantized weights have none (one group of k_packed, as
// per-channel weights: k padded with +0 to a multiple of 8).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "pagedinfer/memory.hpp"
#include "pagedinfer/quant.hpp"

namespace pagedinfer {

struct QuantizedWeight::Storage {
  static constexpr uint32_t kVersion = 4;  // of the file format (serialize.cpp); 1 to 3 are still read
  static constexpr int64_t kTileN = 16;

  int64_t n = 0, k = 0;
  QuantFormat format;
  bool gate_up = false;
  int64_t n_packed = 0, k_packed = 0;
  int64_t group = 0, groups = 0;  // effective group length in packed k, and their count

  std::vector<uint32_t, HugePageAllocator<uint32_t>> q;  // [n_packed / 16][k_packed / kpw][16]
  std::vector<uint16_t> scales;     // [n_packed / 16][groups][16] fp16 bits
  std::vector<uint16_t> zeros;      // as scales: z (zero_point), fp16 m (float_offset); empty if symmetric
  std::vector<int32_t> k_order;     // [k_packed] source k at each packed k (-1: padding); empty = identity
  std::vector<int32_t> k_position;  // [k] packed k of each source k (derived, not saved); empty = identity

  int kpw() const { return 32 / format.bits; }
  bool quantized() const { return format.quantized(); }  // false: 16-bit values, no group params
  int64_t k_words() const { return k_packed / kpw(); }
  int64_t tiles() const { return n_packed / kTileN; }
  const uint32_t* tile(int64_t t) const { return q.data() + t * k_words() * kTileN; }

  // Shape-derived fields (n_packed, k_packed, group, groups) from n, k, format and gate_up;
  // k_packed_padded > 0 sets k_packed (a multiple of the group, > k: padded act-order groups).
  void derive_shape(int64_t k_packed_padded = 0);
  // Bytes of q, scales and zeros for the derived shape.
  int64_t array_bytes() const;
  // derive_shape(k_packed_padded), then the arrays sized and zero-filled.
  void allocate(int64_t k_packed_padded = 0);
  // Derives k_position from k_order.
  void index_k_order();

  int64_t packed_column(int64_t row) const;  // packed column of weight row `row`
  int64_t row_of_packed_column(int64_t p) const;  // its inverse; -1 for padding columns
  // Index into scales and zeros of packed column p, group g.
  int64_t param(int64_t p, int64_t g) const { return ((p / kTileN) * groups + g) * kTileN + p % kTileN; }
  int64_t packed_k(int64_t source_k) const { return k_position.empty() ? source_k : k_position[source_k]; }
  static constexpr int shift_of(int bits, int e) {
    return bits == 16 ? 16 * e : bits == 8 ? 8 * e : 16 * (e & 1) + 4 * (e >> 1);
  }
  static constexpr uint32_t mask_of(int bits) { return (1u << bits) - 1u; }  // bits 4, 8 or 16
  // The int4 elements in the byte order of a word's nibbles: the bytes of w & 0x0f0f0f0f, then of
  // (w >> 4) & 0x0f0f0f0f, hold elements kInt4NibbleOrder[0..3] and [4..7] (VNNI and AMX int8
  // kernels; their activations are prepared in this order). Follows from shift_of.
  static constexpr int kInt4NibbleOrder[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  // Where element e sits in that order (the inverse permutation).
  static constexpr int int4_nibble_position(int e) {
    int p = 0;
    while (kInt4NibbleOrder[p] != e) ++p;
    return p;
  }
  uint32_t& word(int64_t p, int64_t i) { return q[((p / kTileN) * k_words() + i / kpw()) * kTileN + p % kTileN]; }
  uint32_t word(int64_t p, int64_t i) const {
    return q[((p / kTileN) * k_words() + i / kpw()) * kTileN + p % kTileN];
  }
  void set_q(int64_t p, int64_t i, uint32_t v) {
    const int s = shift_of(format.bits, int(i % kpw()));
    const uint32_t mask = mask_of(format.bits) << s;
    word(p, i) = (word(p, i) & ~mask) | ((v << s) & mask);
  }
  uint32_t get_q(int64_t p, int64_t i) const {
    return (word(p, i) >> shift_of(format.bits, int(i % kpw()))) & mask_of(format.bits);
  }
  // Zero point of (group, column) as the integer or float that dequantization subtracts/adds.
  double symmetric_zero() const { return double(1 << (format.bits - 1)); }
};

// Nibble byte p (of w & 0x0f0f0f0f for p < 4, of (w >> 4) & 0x0f0f0f0f after) starts at bit
// 8 (p % 4) + 4 (p / 4): the element shift_of puts there.
static_assert(
    [] {
      using S = QuantizedWeight::Storage;
      for (int p = 0; p < 8; ++p)
        if (S::shift_of(4, S::kInt4NibbleOrder[p]) != 8 * (p % 4) + 4 * (p / 4)) return false;
      return true;
    }(),
    "kInt4NibbleOrder must follow shift_of");

namespace detail {
// Throws unless n and k are in the ranges every packed weight keeps (quant.hpp).
void check_shape(const char* where, int64_t n, int64_t k);

// Validates a shape and format (bits, group size dividing k) for `where`, then allocates the
// arrays, unless they would need more than max_array_bytes (>= 0): a file's header is checked
// against the bytes that follow before anything is allocated. k_packed_padded > 0: a grouped
// act-order weight with padded groups (layout above): k < k_packed_padded <= 32 k, a multiple of
// the group.
std::shared_ptr<QuantizedWeight::Storage> new_storage(const char* where, int64_t n, int64_t k,
                                                      const QuantFormat& f, bool gate_up,
                                                      int64_t max_array_bytes = -1, int64_t k_packed_padded = 0);
}  // namespace detail

}  // namespace pagedinfer
