// pagedinfer: sampling the next token of each request from its logits (after the LM head).
//
// Contract. For request r of a batch, with logits l[0, vocab) (fp32, bf16 or fp16, read exactly)
// and its SamplingParams:
//  1. Penalties over the request's previous tokens (prev_tokens[prev_indptr[r], prev_indptr[r+1])):
//     every token t seen c_t > 0 times gets, in fp32, one rounding per operation,
//       l_t = l_t > 0 ? l_t / repetition_penalty : l_t * repetition_penalty    (HF, vLLM)
//       l_t = l_t - (frequency_penalty * c_t + presence_penalty)
//     (vLLM applies the repetition penalty over prompt and output tokens and the other two over
//     output tokens: pass the list the engine wants penalized.)
//  2. temperature <= 0: greedy: the token with the largest l (the lowest index among equal ones).
//  3. Otherwise v = l / temperature (fp32 division); M = max v. Then the kept set K, each rule a
//     threshold on v with ties kept, applied in vLLM's order:
//       min_p > 0: v >= M + ln(min_p)                 (p >= min_p * p_max)
//       top_k > 0: v >= the top_k-th largest v of what min_p kept (all of it if fewer)
//       top_p < 1: of what is kept so far, with p renormalized over it, v >= the largest t
//                  whose set {v >= t} holds at least top_p of that mass (the nucleus)
//  4. The draw: u in [0, 1) from Philox4x32-10 (key = seed, counter = (step, 0)): sampling_uniform()
//     below. The token is the first of K in vocabulary order whose cumulative weight exp(v - M)
//     exceeds u times the total weight of K. So a request's token depends only on its logits,
//     previous tokens and parameters, never on its batch, position or the thread count.
//  5. logprobs (optional): log_softmax of the raw logits (before penalties and temperature, as
//     vLLM's default "raw_logprobs") at the chosen token.
//
// Numerics. Steps 1-2 and v are exactly as written. The kernels compute weights exp(v - M) and
// their sums in fp32 (sums of n terms: relative error below (n + 4) * 2^-24); reference::sample
// computes step 3-5 in double. So the kernel and the reference can differ only where the draw
// u * total, or top_p times a mass, lies within that bound of a boundary; tests derive their
// tolerance from it. A token whose weight underflows fp32 (v < M - 87) is never drawn.
//
// Logits may be -inf (masked tokens); NaN and +inf are refused, as is a row whose every logit
// is -inf. Errors name the request and the rule.
//
// Work: one thread per request (num_threads share the batch); each reads its logits once from
// memory into the workspace and works there. Top-k, min-p and top-p select candidates by a
// threshold that only grows (no sort of the vocabulary); top-p without top-k collects the
// tokens within a widening distance of M until they hold top_p of the mass. Plan-free:
// sample_workspace_size() bytes of caller memory, nothing allocated.
#pragma once
#include <cstddef>
#include <cstdint>

#include "pagedinfer/tensor.hpp"

namespace pagedinfer {

struct SamplingParams {
  float temperature = 1.f;         // <= 0: greedy
  int32_t top_k = 0;               // 0 or >= vocab: no top-k
  float top_p = 1.f;               // (0, 1]; 1: no top-p
  float min_p = 0.f;               // [0, 1]; 0: no min-p
  float repetition_penalty = 1.f;  // > 0; 1: none
  float presence_penalty = 0.f;
  float frequency_penalty = 0.f;
  uint64_t seed = 0;  // the request's generator
  uint64_t step = 0;  // its draw counter: the request's decode step, say
};

struct SampleParams {
  int64_t num_reqs = 0;
  int64_t vocab = 0;
  TokensView logits;                         // [num_reqs, vocab]: stride_token >= vocab; stride_head unused
  const SamplingParams* requests = nullptr;  // [num_reqs]
  const int64_t* prev_indptr = nullptr;      // [num_reqs + 1], non-decreasing from 0; null: no penalties
  const int32_t* prev_tokens = nullptr;      // [prev_indptr[num_reqs]], each in [0, vocab)
  int32_t* tokens = nullptr;                 // out [num_reqs]
  float* logprobs = nullptr;                 // optional out [num_reqs]
  int num_threads = 1;
  void* workspace = nullptr;  // workspace_bytes >= sample_workspace_size(...), 64-byte aligned
  std::size_t workspace_bytes = 0;
};

// Bytes of workspace sample() needs (uses vocab and num_threads only).
PAGEDINFER_API std::size_t sample_workspace_size(const SampleParams& p);
PAGEDINFER_API void sample(const SampleParams& p);

// The u of step 4 for (seed, step): the top 24 bits of Philox4x32-10's first output word
// (key = seed's low and high halves, counter = step's low and high halves, 0, 0), times 2^-24.
PAGEDINFER_API float sampling_uniform(uint64_t seed, uint64_t step);

// The registered kernel (kernels.hpp) that sample() runs, now.
PAGEDINFER_API const char* sample_kernel_name();

namespace reference {
// The oracle: steps 1-2 and v as written, the rest in double. Ignores workspace and threads.
PAGEDINFER_API void sample(const SampleParams& p);
// The distribution request r draws from: probs[i] = exp(v_i - M) / (total over K) for i in K, 0
// elsewhere (greedy: 1 at the token), in double; probs has vocab entries.
PAGEDINFER_API void sampling_probabilities(const SampleParams& p, int64_t r, double* probs);
}  // namespace reference

}  // namespace pagedinfer
