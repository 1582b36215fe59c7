// The 64-bit checksum of pagedinfer's byte formats (packed weight files from version 2, KV
// transfers): FNV-1a's step on 8-byte little-endian words in four independent lanes (so the
// multiplies overlap rather than forming one serial chain per byte), each step folding the high
// half down so that every bit reaches the low ones; trailing bytes go to lane 0 byte by byte;
// the lanes and the length are combined last.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace pagedinfer::detail {

constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull, kFnvPrime = 0x100000001b3ull;

inline uint64_t word_checksum(const uint8_t* p, std::size_t n) {
  uint64_t h[4] = {kFnvBasis, kFnvBasis ^ 1, kFnvBasis ^ 2, kFnvBasis ^ 3};
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int lane = 0; lane < 4; ++lane) {
      uint64_t word;
      std::memcpy(&word, p + i + 8 * lane, 8);
      h[lane] = (h[lane] ^ word) * kFnvPrime;
      h[lane] ^= h[lane] >> 32;
    }
  for (; i < n; ++i) h[0] = (h[0] ^ p[i]) * kFnvPrime;
  uint64_t out = kFnvBasis ^ uint64_t(n);
  for (uint64_t lane : h) {
    out = (out ^ lane) * kFnvPrime;
    out ^= out >> 32;
  }
  return out;
}

}  // namespace pagedinfer::detail
