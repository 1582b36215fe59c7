// The RMSNorm oracle: one row at a time in double, rounded to the storage type at the end
// (through fp32, which is far below the tolerance of any comparison against it).
#include <cmath>

#include "common/convert.hpp"
#include "norm/validate.hpp"

namespace pagedinfer::reference {

namespace {

using detail::load_as_float;
using detail::store_from_float;

void normalize_rows(const detail::NormRows& j) {
  const int64_t es = int64_t(dtype_size(j.dtype));
  for (int64_t t = 0; t < j.tokens; ++t)
    for (int32_t h = 0; h < j.heads; ++h) {
      const char* in = j.in.row(t, h, es);
      char* out = j.out.row(t, h, es);
      const void* src = in;
      if (j.residual.data) {
        // The convention of norm.hpp: the sum is formed in fp32 and rounded to storage.
        char* res = j.residual.row(t, h, es);
        for (int32_t d = 0; d < j.dim; ++d)
          store_from_float(res, j.dtype, d, load_as_float(in, j.dtype, d) + load_as_float(res, j.dtype, d));
        src = res;
      }
      double ss = 0;
      for (int32_t d = 0; d < j.dim; ++d) {
        const double x = load_as_float(src, j.dtype, d);
        ss += x * x;
      }
      const double inv_rms = 1.0 / std::sqrt(ss / j.dim + double(j.eps));
      for (int32_t d = 0; d < j.dim; ++d) {
        const double w = double(load_as_float(j.weight, j.weight_dtype, d)) + j.weight_offset;
        store_from_float(out, j.dtype, d, float(double(load_as_float(src, j.dtype, d)) * inv_rms * w));
      }
    }
}

}  // namespace

void rms_norm(const RmsNormParams& p) {
  normalize_rows(detail::validate_rms_norm(p, "reference::rms_norm"));
}

void fused_add_rms_norm(const RmsNormParams& p) {
  normalize_rows(detail::validate_fused_add_rms_norm(p, "reference::fused_add_rms_norm"));
}

}  // namespace pagedinfer::reference
