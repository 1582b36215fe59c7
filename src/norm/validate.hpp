// Argument checks shared by rms_norm, fused_add_rms_norm and their references.
#pragma once
#include "norm/kernel.hpp"
#include "pagedinfer/norm.hpp"

namespace pagedinfer::detail {

// Throw pagedinfer::Error naming the bad argument; return the rows a kernel can run.
NormRows validate_rms_norm(const RmsNormParams& p, const char* where);
NormRows validate_fused_add_rms_norm(const RmsNormParams& p, const char* where);

}  // namespace pagedinfer::detail
