// Argument checks shared by apply_rope, the fused append and the reference.
#pragma once
#include "rope/kernel.hpp"

namespace pagedinfer::detail {

// Throws pagedinfer::Error naming the bad argument; returns the job without a cache.
RopeJob validate_rope(const RopeParams& p, const char* where);

}  // namespace pagedinfer::detail
