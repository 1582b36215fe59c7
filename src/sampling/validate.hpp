// Argument checks shared by sample() and reference::sample().
#pragma once
#include "pagedinfer/sampling.hpp"

namespace pagedinfer::detail {

// Throws pagedinfer::Error naming the bad argument and the rule it breaks. Logit values are
// checked by the callers as they read them (sampling.hpp: no NaN or +inf, not all -inf).
void validate_sample(const SampleParams& p, const char* where);

// The message for a logit the contract refuses (NaN or +inf), or a row of -inf only (i < 0).
[[noreturn]] void fail_logit(const char* where, int64_t r, int64_t i, float value);

}  // namespace pagedinfer::detail
