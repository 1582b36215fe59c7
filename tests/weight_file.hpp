// The packed weight file's checksums (src/quant/serialize.cpp), written here from the format's
// description so that tests and fuzzers can forge files of every version: version 1 is FNV-1a 64
// over bytes; versions 2 to 4 run FNV-1a steps over 8-byte words in four lanes, fold the high
// half down after each step, take trailing bytes into lane 0 and combine the lanes and the length.
#pragma once
#include <cstdint>
#include <cstring>

namespace testutil {

inline uint64_t weight_file_checksum(uint32_t version, const uint8_t* p, std::size_t n) {
  constexpr uint64_t kBasis = 0xcbf29ce484222325ull, kPrime = 0x100000001b3ull;
  auto step = [](uint64_t h, uint64_t v, bool fold) {
    h = (h ^ v) * kPrime;
    return fold ? h ^ (h >> 32) : h;
  };
  if (version == 1) {
    uint64_t h = kBasis;
    for (std::size_t i = 0; i < n; ++i) h = step(h, p[i], false);
    return h;
  }
  uint64_t lane[4];
  for (uint64_t l = 0; l < 4; ++l) lane[l] = kBasis ^ l;
  const std::size_t whole = n / 32 * 32;
  for (std::size_t i = 0; i < whole; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    lane[i / 8 % 4] = step(lane[i / 8 % 4], v, true);
  }
  for (std::size_t i = whole; i < n; ++i) lane[0] = step(lane[0], p[i], false);
  uint64_t h = kBasis ^ uint64_t(n);
  for (uint64_t l : lane) h = step(h, l, true);
  return h;
}

}  // namespace testutil
