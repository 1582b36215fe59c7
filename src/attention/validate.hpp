// Validation of paged-attention arguments at the API boundary.
#pragma once
#include "pagedinfer/attention.hpp"

namespace pagedinfer::detail {

// Everything checkable from the params alone: shapes, dtypes, pointers, strides, page ids,
// lengths, options. `where` names the calling function in messages.
void validate_attention_params(const AttentionParams& p, const char* where);

// The params' request count, heads and head dims are the plan's (reads no array): checked before
// the params themselves, so that a params struct of another batch is named as such.
void validate_shape_against_plan(const AttentionPlan& plan, const AttentionParams& p);
// The params describe the same batch as the plan, and the workspace is large enough.
void validate_attention_against_plan(const AttentionPlan& plan, const AttentionParams& p, const void* workspace,
                                     std::size_t workspace_bytes);

// The problem a plan is made for is self-consistent.
void validate_attention_problem(const AttentionProblem& pr);

}  // namespace pagedinfer::detail
