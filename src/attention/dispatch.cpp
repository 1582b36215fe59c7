#include "attention/kernel.hpp"
#include "common/dispatch.hpp"

namespace pagedinfer::detail {

// No bf16-dot variant yet: on avx512_bf16 CPUs the fp32 AVX-512 kernel is the best.
AttentionItemKernel attention_kernel(DType kv) {
  return best_kernel([=] { return attention_kernel_baseline(kv); }, [=] { return attention_kernel_avx2(kv); },
                     [=] { return attention_kernel_avx512(kv); });
}

}  // namespace pagedinfer::detail
