// The oracle of linear(): dequantize() in double, double sums, one rounding at the end.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.hpp"
#include "common/convert.hpp"
#include "gemm/kernel.hpp"
#include "pagedinfer/linear.hpp"

namespace pagedinfer::reference {

float quantize_activation_row(const void* x, DType dtype, int64_t k, int8_t* a) {
  float amax = 0.f;  // NaN if any x is (std::fmax would drop it)
  for (int64_t i = 0; i < k; ++i) {
    const float v = std::fabs(detail::load_as_float(x, dtype, size_t(i)));
    amax = std::isnan(v) || std::isnan(amax) ? NAN : std::max(amax, v);
  }
  const float inv = amax > 0.f && std::isfinite(amax) ? 127.f / amax : 0.f;
  for (int64_t i = 0; i < k; ++i) {
    const float v = detail::load_as_float(x, dtype, size_t(i)) * inv;  // the product is rounded to fp32, as the rule says
    a[i] = std::fabs(v) < detail::kInt8Limit ? int8_t(std::nearbyint(v)) : int8_t(0);
  }
  return amax / 127.f;
}

void linear(const QuantizedWeight& w, const LinearParams& p) {
  PAGEDINFER_CHECK(!p.silu_mul || w.gate_up(), "reference::linear", "silu_mul needs a gate_up weight");
  PAGEDINFER_CHECK(p.k == w.k(), "reference::linear", "params.k = ", p.k, " does not match the weight's k = ", w.k());
  const int64_t n = w.n(), k = w.k(), n_out = p.silu_mul ? n / 2 : n;
  const size_t xs = dtype_size(p.x.dtype), ys = dtype_size(p.y.dtype);
  std::vector<double> wd(size_t(n * k));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) wd[r * k + i] = w.dequantize(r, i);
  std::vector<double> xrow(static_cast<size_t>(k)), acc(static_cast<size_t>(n));
  std::vector<int8_t> a(static_cast<size_t>(k));
  for (int64_t m = 0; m < p.m; ++m) {
    const char* x = static_cast<const char*>(p.x.data) + m * p.x.stride_token * xs;
    double row_scale = 1.0;
    if (p.activations == LinearActivations::int8_per_token) {
      row_scale = quantize_activation_row(x, p.x.dtype, k, a.data());
      for (int64_t i = 0; i < k; ++i) xrow[i] = a[i];
    } else {
      for (int64_t i = 0; i < k; ++i) xrow[i] = detail::load_as_float(x, p.x.dtype, size_t(i));
    }
    for (int64_t r = 0; r < n; ++r) {
      double s = 0;
      for (int64_t i = 0; i < k; ++i) s += wd[r * k + i] * xrow[i];
      acc[r] = s * row_scale + (p.bias ? detail::load_as_float(p.bias, p.bias_dtype, size_t(r)) : 0.0);
    }
    char* y = static_cast<char*>(p.y.data) + m * p.y.stride_token * ys;
    const char* res = p.residual.data ? static_cast<const char*>(p.residual.data) + m * p.residual.stride_token * ys : nullptr;
    for (int64_t c = 0; c < n_out; ++c) {
      double v = acc[c];
      if (p.silu_mul) v = v / (1.0 + std::exp(-v)) * acc[n_out + c];
      if (res) v += detail::load_as_float(res, p.y.dtype, size_t(c));
      detail::store_from_float(y, p.y.dtype, size_t(c), float(v));
    }
  }
}

}  // namespace pagedinfer::reference
