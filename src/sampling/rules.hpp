// The scalar rules that sample() and reference::sample() share, so that both compute the same
// values bit for bit where sampling.hpp says "as written": Philox4x32-10 for the draw's u and the
// penalty of step 1.
#pragma once
#include <cstdint>

#include "pagedinfer/sampling.hpp"

namespace pagedinfer::detail {

// Philox4x32-10 (Salmon et al., SC'11): ten rounds of two 32 x 32 -> 64-bit products, the key
// bumped by the Weyl constants between rounds.
struct Philox4x32 {
  uint32_t out[4];
  Philox4x32(const uint32_t counter[4], const uint32_t key[2]) {
    constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u, kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3], k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; ++round) {
      const uint64_t p0 = uint64_t(kM0) * c0, p1 = uint64_t(kM1) * c2;
      const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0, n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
      c1 = uint32_t(p1);
      c3 = uint32_t(p0);
      c0 = n0;
      c2 = n2;
      k0 += kW0;
      k1 += kW1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
  }
};

inline float uniform_of(uint64_t seed, uint64_t step) {
  const uint32_t counter[4] = {uint32_t(step), uint32_t(step >> 32), 0u, 0u};
  const uint32_t key[2] = {uint32_t(seed), uint32_t(seed >> 32)};
  return float(Philox4x32(counter, key).out[0] >> 8) * (1.f / 16777216.f);
}

// Step 1 for a token seen `count` > 0 times, in fp32 with one rounding per operation.
inline float penalized(float l, int32_t count, const SamplingParams& s) {
  l = l > 0.f ? l / s.repetition_penalty : l * s.repetition_penalty;
  return l - (s.frequency_penalty * float(count) + s.presence_penalty);
}

inline bool greedy(const SamplingParams& s) { return !(s.temperature > 0.f); }

}  // namespace pagedinfer::detail
