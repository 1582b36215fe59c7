#include "common/dispatch.hpp"
#include "gemm/kernel.hpp"

namespace pagedinfer::detail {

GemmKernel gemm_kernel(const QuantizedWeight::Storage& w, LinearActivations mode, DType x, int64_t m) {
#if defined(__x86_64__) || defined(_M_X64)
  if (active_isa() >= Isa::amx) {
    const GemmKernel k = gemm_kernel_amx(w, mode, x, m);
    if (k.run) return k;
  }
  if (active_isa() >= Isa::avx512_bf16) {
    const GemmKernel k = gemm_kernel_avx512_bf16(w, mode, x, m);
    if (k.run) return k;
  }
#endif
  return best_kernel([&] { return gemm_kernel_baseline(w, mode, x, m); },
                     [&] { return gemm_kernel_avx2(w, mode, x, m); },
                     [&] { return gemm_kernel_avx512(w, mode, x, m); });
}

}  // namespace pagedinfer::detail
