// Sampling the next token from fp32 logits, on the CPU: greedy, or temperature with optional
// top-k and top-p (nucleus) filtering, from a per-request seeded stream, so a request's tokens
// depend only on its logits and its seed.
#pragma once
#include <cstdint>
#include <vector>

namespace decoder {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy (the highest logit, the lowest index on ties)
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;        // 1: off; else the smallest set of top tokens whose mass >= top_p
  uint64_t seed = 0;
};

// The token for `logits` [vocab]; `step` is the request's draw number (0 for its first token),
// which with the seed fixes the random number, whatever else runs in the same batch.
int32_t sample(const float* logits, int32_t vocab, const SamplingParams& p, uint64_t step);

}  // namespace decoder
