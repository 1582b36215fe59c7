#include "attention/kernel.hpp"
#include "common/dispatch.hpp"

namespace pagedinfer::detail {

AttentionItemKernel attention_kernel(DType q, DType kv) {
#if defined(__x86_64__) || defined(_M_X64)
  // bf16 dot products need q and K in bf16 as given: rounding an fp32 or fp16 q would lose
  // what the fp32 kernel keeps.
  if (active_isa() >= Isa::avx512_bf16 && q == DType::bf16 && kv == DType::bf16) return attention_kernel_avx512_bf16();
#endif
  (void)q;
  return best_kernel([=] { return attention_kernel_baseline(kv); }, [=] { return attention_kernel_avx2(kv); },
                     [=] { return attention_kernel_avx512(kv); });
}

}  // namespace pagedinfer::detail
