// The RMSNorm kernel table: which kernel runs a call (common/registry.hpp, kernels.hpp).
#include "common/registry.hpp"
#include "norm/kernel.hpp"
#include "pagedinfer/norm.hpp"

namespace pagedinfer::detail {

namespace {

struct NormCase {
  DType x, weight;
};
using Entry = KernelEntry<NormCase, NormKernel>;

template <NormKernel (*Make)(DType, DType)>
NormKernel by_dtypes(const NormCase& c) {
  return Make(c.x, c.weight);
}

const Entry kTable[] = {
#if defined(__x86_64__) || defined(_M_X64)
    {{"norm", "avx512", needs::kAvx512, "every dtype, 512-bit"}, &any_case<NormCase>, nullptr,
     &by_dtypes<norm_kernel_avx512>},
    {{"norm", "avx2", needs::kAvx2, "every dtype, 256-bit"}, &any_case<NormCase>, nullptr, &by_dtypes<norm_kernel_avx2>},
    {{"norm", "sse2", needs::kSse2, "every dtype, 128-bit (x86-64 baseline)"}, &any_case<NormCase>, nullptr,
     &by_dtypes<norm_kernel_baseline>},
#else
    {{"norm", "neon", needs::kNeon, "every dtype, 128-bit (aarch64 baseline)"}, &any_case<NormCase>, nullptr,
     &by_dtypes<norm_kernel_baseline>},
#endif
};

const Entry& select_entry(DType x, DType w) { return select(kTable, norm_registry(), NormCase{x, w}); }

}  // namespace

OpRegistry& norm_registry() { return registry_of<kTable>("norm"); }

NormKernel norm_kernel(DType x, DType w) { return select_entry(x, w).make({x, w}); }

}  // namespace pagedinfer::detail

namespace pagedinfer {
const char* rms_norm_kernel_name(DType dtype, DType weight_dtype) {
  return detail::select_entry(dtype, weight_dtype).info.name;
}
}  // namespace pagedinfer
