// rms_norm and fused_add_rms_norm: validate, then hand rows to the best kernel in parallel.
#include <algorithm>

#include "common/threading.hpp"
#include "norm/validate.hpp"

namespace pagedinfer {

namespace {

// Fewest rows per thread: about 32 KiB of activations each, so that waking a thread pays for
// itself (QK norm's rows are short) while 512 hidden-state rows still spread.
int64_t row_grain(const detail::NormRows& j) {
  const int64_t row_bytes = int64_t(j.dim) * int64_t(dtype_size(j.dtype));
  return std::max<int64_t>(1, (32 << 10) / row_bytes);
}

void run(const detail::NormRows& j, int num_threads) {
  const detail::NormKernel kernel = detail::norm_kernel(j.dtype, j.weight_dtype);
  detail::parallel_ranges(j.tokens * j.heads, num_threads, row_grain(j),
                          [&](int64_t r0, int64_t r1) { kernel(j, r0, r1); });
}

}  // namespace

void rms_norm(const RmsNormParams& p) { run(detail::validate_rms_norm(p, "rms_norm"), p.num_threads); }

void fused_add_rms_norm(const RmsNormParams& p) {
  run(detail::validate_fused_add_rms_norm(p, "fused_add_rms_norm"), p.num_threads);
}

}  // namespace pagedinfer
