// The RoPE kernel table: which kernel runs a call (common/registry.hpp, kernels.hpp).
#include "common/registry.hpp"
#include "rope/kernel.hpp"
#include "pagedinfer/rope.hpp"

namespace pagedinfer::detail {

namespace {

struct RopeCase {
  DType x, k_out;
};
using Entry = KernelEntry<RopeCase, RopeKernel>;

template <RopeKernel (*Make)(DType, DType)>
RopeKernel by_dtypes(const RopeCase& c) {
  return Make(c.x, c.k_out);
}

const Entry kTable[] = {
#if defined(__x86_64__) || defined(_M_X64)
    {{"rope", "avx512", needs::kAvx512, "every dtype, 512-bit"}, &any_case<RopeCase>, nullptr,
     &by_dtypes<rope_kernel_avx512>},
    {{"rope", "avx2", needs::kAvx2, "every dtype, 256-bit"}, &any_case<RopeCase>, nullptr, &by_dtypes<rope_kernel_avx2>},
    {{"rope", "sse2", needs::kSse2, "every dtype, 128-bit (x86-64 baseline)"}, &any_case<RopeCase>, nullptr,
     &by_dtypes<rope_kernel_baseline>},
#else
    {{"rope", "neon", needs::kNeon, "every dtype, 128-bit (aarch64 baseline)"}, &any_case<RopeCase>, nullptr,
     &by_dtypes<rope_kernel_baseline>},
#endif
};

const Entry& select_entry(DType x, DType w) { return select(kTable, rope_registry(), RopeCase{x, w}); }

}  // namespace

OpRegistry& rope_registry() { return registry_of<kTable>("rope"); }

RopeKernel rope_kernel(DType x, DType w) { return select_entry(x, w).make({x, w}); }

}  // namespace pagedinfer::detail

namespace pagedinfer {
const char* rope_kernel_name(DType dtype, DType k_out_dtype) {
  return detail::select_entry(dtype, k_out_dtype).info.name;
}
}  // namespace pagedinfer
