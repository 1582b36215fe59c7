#include "attention/kernel.hpp"
#include "pagedinfer/cpu.hpp"

namespace pagedinfer::detail {

AttentionItemKernel attention_kernel(DType kv) {
#if defined(__x86_64__) || defined(_M_X64)
  switch (active_isa()) {
    case Isa::avx512_bf16:  // no bf16-dot variant yet: the fp32 AVX-512 kernel is the best
    case Isa::avx512: return attention_kernel_avx512(kv);
    case Isa::avx2: return attention_kernel_avx2(kv);
    case Isa::baseline: break;
  }
#endif
  return attention_kernel_baseline(kv);
}

}  // namespace pagedinfer::detail
