#include "norm/validate.hpp"

#include <cmath>

#include "common/check.hpp"
#include "common/tensor_check.hpp"

namespace pagedinfer::detail {

namespace {

// Checks what both entry points share and fills the rows' shape and weight.
NormRows validate_common(const RmsNormParams& p, const char* where) {
  PAGEDINFER_CHECK(p.num_tokens >= 0, where, "params.num_tokens = ", p.num_tokens, " must be >= 0");
  PAGEDINFER_CHECK(p.num_heads >= 1, where, "params.num_heads = ", p.num_heads, " must be >= 1");
  PAGEDINFER_CHECK(p.dim >= 1, where, "params.dim = ", p.dim, " must be >= 1");
  PAGEDINFER_CHECK(p.eps > 0 && std::isfinite(p.eps), where, "params.eps = ", p.eps, " must be finite and > 0");
  detail::check_num_threads(p.num_threads, where, "params.num_threads");
  PAGEDINFER_CHECK(is_float_dtype(p.weight_dtype), where, "params.weight_dtype must be f32, bf16 or f16");
  PAGEDINFER_CHECK(p.weight != nullptr, where, "params.weight must not be null");
  PAGEDINFER_CHECK(aligned_to(p.weight, p.weight_dtype), where, "params.weight must be aligned to ",
                   dtype_size(p.weight_dtype), " bytes");
  NormRows j;
  j.tokens = p.num_tokens;
  j.heads = p.num_heads;
  j.dim = p.dim;
  j.weight = p.weight;
  j.weight_dtype = p.weight_dtype;
  j.eps = p.eps;
  j.weight_offset = p.weight_plus_one ? 1.0f : 0.0f;
  return j;
}

template <class View>
void validate_view(const View& v, const RmsNormParams& p, const char* where, const char* name) {
  validate_tokens(v.data, v.dtype, v.stride_token, v.stride_head, p.num_tokens, p.num_heads, p.dim, where, name);
}

template <class View>
std::pair<uintptr_t, uintptr_t> extent(const View& v, const RmsNormParams& p) {
  return tokens_extent(v.data, v.dtype, v.stride_token, v.stride_head, p.num_tokens, p.num_heads, p.dim);
}

}  // namespace

// The views input and output share: valid, one dtype, in place or disjoint.
NormRows validate_rms_norm(const RmsNormParams& p, const char* where) {
  NormRows j = validate_common(p, where);
  const TokensView& in = p.input;
  const OutTokensView& out = p.output;
  validate_view(in, p, where, "input");
  validate_view(out, p, where, "output");
  PAGEDINFER_CHECK(in.dtype == out.dtype, where, "output.dtype (", dtype_name(out.dtype),
                   ") must equal input.dtype (", dtype_name(in.dtype), ")");
  const bool same = in.data == out.data && in.stride_token == out.stride_token &&
                    (p.num_heads == 1 || in.stride_head == out.stride_head);
  PAGEDINFER_CHECK(p.num_tokens == 0 || same || !extents_overlap(extent(in, p), extent(out, p)), where,
                   "output must be the input tensor itself (in place) or not overlap it");
  j.in = {const_cast<void*>(in.data), in.stride_token, in.stride_head};  // never written through
  j.out = {out.data, out.stride_token, out.stride_head};
  j.dtype = in.dtype;
  return j;
}

NormRows validate_fused_add_rms_norm(const RmsNormParams& p, const char* where) {
  NormRows j = validate_rms_norm(p, where);
  const OutTokensView& res = p.residual;
  validate_view(res, p, where, "residual");
  PAGEDINFER_CHECK(res.dtype == p.input.dtype, where, "residual.dtype (", dtype_name(res.dtype),
                   ") must equal input.dtype (", dtype_name(p.input.dtype), ")");
  PAGEDINFER_CHECK(p.num_tokens == 0 || (!extents_overlap(extent(p.input, p), extent(res, p)) &&
                                         !extents_overlap(extent(p.output, p), extent(res, p))),
                   where, "residual must not overlap input or output");
  j.residual = {res.data, res.stride_token, res.stride_head};
  return j;
}

}  // namespace pagedinfer::detail
