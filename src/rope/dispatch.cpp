#include "common/dispatch.hpp"
#include "rope/kernel.hpp"

namespace pagedinfer::detail {

RopeKernel rope_kernel(DType x, DType k_out) {
  return best_kernel([=] { return rope_kernel_baseline(x, k_out); }, [=] { return rope_kernel_avx2(x, k_out); },
                     [=] { return rope_kernel_avx512(x, k_out); });
}

}  // namespace pagedinfer::detail
