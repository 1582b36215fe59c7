#include "sampling/validate.hpp"

#include <cmath>

#include "common/check.hpp"
#include "common/tensor_check.hpp"

namespace pagedinfer::detail {

void validate_sample(const SampleParams& p, const char* where) {
  PAGEDINFER_CHECK(p.num_reqs >= 0, where, "params.num_reqs = ", p.num_reqs, " must be >= 0");
  PAGEDINFER_CHECK(p.vocab >= 1 && p.vocab <= (int64_t(1) << 31) - 1, where, "params.vocab = ", p.vocab,
                   " must be in [1, 2^31)");
  check_num_threads(p.num_threads, where, "params.num_threads");
  if (p.num_reqs == 0) return;
  PAGEDINFER_CHECK(p.logits.stride_token >= p.vocab, where, "params.logits.stride_token = ", p.logits.stride_token,
                   " is smaller than vocab = ", p.vocab);
  validate_tokens(p.logits.data, p.logits.dtype, p.logits.stride_token, 0, p.num_reqs, 1, int32_t(p.vocab), where,
                  "logits");
  PAGEDINFER_CHECK(p.requests != nullptr, where, "params.requests is null");
  PAGEDINFER_CHECK(p.tokens != nullptr, where, "params.tokens is null");
  for (int64_t r = 0; r < p.num_reqs; ++r) {
    const SamplingParams& s = p.requests[r];
    PAGEDINFER_CHECK(std::isfinite(s.temperature), where, "requests[", r, "].temperature = ", s.temperature,
                     " must be finite (<= 0: greedy)");
    PAGEDINFER_CHECK(s.top_k >= 0, where, "requests[", r, "].top_k = ", s.top_k, " must be >= 0 (0: no top-k)");
    PAGEDINFER_CHECK(s.top_p > 0.f && s.top_p <= 1.f, where, "requests[", r, "].top_p = ", s.top_p,
                     " must be in (0, 1]");
    PAGEDINFER_CHECK(s.min_p >= 0.f && s.min_p <= 1.f, where, "requests[", r, "].min_p = ", s.min_p,
                     " must be in [0, 1]");
    PAGEDINFER_CHECK(s.repetition_penalty > 0.f && std::isfinite(s.repetition_penalty), where, "requests[", r,
                     "].repetition_penalty = ", s.repetition_penalty, " must be finite and > 0");
    PAGEDINFER_CHECK(std::isfinite(s.presence_penalty) && std::isfinite(s.frequency_penalty), where, "requests[", r,
                     "]: presence_penalty = ", s.presence_penalty, " and frequency_penalty = ", s.frequency_penalty,
                     " must be finite");
  }
  if (p.prev_indptr == nullptr) return;
  PAGEDINFER_CHECK(p.prev_indptr[0] == 0, where, "params.prev_indptr[0] = ", p.prev_indptr[0], " must be 0");
  for (int64_t r = 0; r < p.num_reqs; ++r)
    PAGEDINFER_CHECK(p.prev_indptr[r + 1] >= p.prev_indptr[r], where, "params.prev_indptr[", r + 1, "] = ",
                     p.prev_indptr[r + 1], " is smaller than prev_indptr[", r, "] = ", p.prev_indptr[r]);
  const int64_t total = p.prev_indptr[p.num_reqs];
  PAGEDINFER_CHECK(total == 0 || p.prev_tokens != nullptr, where, "params.prev_tokens is null but prev_indptr[",
                   p.num_reqs, "] = ", total);
  for (int64_t i = 0; i < total; ++i)
    PAGEDINFER_CHECK(p.prev_tokens[i] >= 0 && p.prev_tokens[i] < p.vocab, where, "params.prev_tokens[", i, "] = ",
                     p.prev_tokens[i], " is outside [0, vocab = ", p.vocab, ")");
}

void fail_logit(const char* where, int64_t r, int64_t i, float value) {
  if (i < 0) fail(where, "every logit of request ", r, " is -inf: there is no token to sample");
  fail(where, "logits[", r, "][", i, "] = ", value, " is not allowed (NaN and +inf are refused; -inf masks a token)");
}

}  // namespace pagedinfer::detail
