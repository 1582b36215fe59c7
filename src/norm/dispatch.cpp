#include "common/dispatch.hpp"
#include "norm/kernel.hpp"

namespace pagedinfer::detail {

NormKernel norm_kernel(DType x, DType w) {
  return best_kernel([=] { return norm_kernel_baseline(x, w); }, [=] { return norm_kernel_avx2(x, w); },
                     [=] { return norm_kernel_avx512(x, w); });
}

}  // namespace pagedinfer::detail
