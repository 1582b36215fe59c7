// Validation of paged-attention arguments at the API boundary.
#pragma once
#include "pagedinfer/attention.hpp"

namespace pagedinfer::detail {

// Everything checkable from the params alone: shapes, dtypes, pointers, strides, page ids,
// lengths, options. `where` names the calling function in messages.
void validate_attention_params(const AttentionParams& p, const char* where);

// The params describe the same batch as the plan, and the workspace is large enough.
void validate_attention_against_plan(const AttentionPlan& plan, const AttentionParams& p, const void* workspace,
                                     std::size_t workspace_bytes);

// The problem a plan is made for is self-consistent.
void validate_attention_problem(const AttentionProblem& pr);

}  // namespace pagedinfer::detail
