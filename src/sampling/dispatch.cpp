// The sampling kernel table: which kernel runs a call (common/registry.hpp, kernels.hpp).
#include "common/registry.hpp"
#include "pagedinfer/sampling.hpp"
#include "sampling/kernel.hpp"

namespace pagedinfer::detail {

namespace {

struct SamplingCase {};
using Entry = KernelEntry<SamplingCase, SamplingKernel>;

template <SamplingKernel (*Make)()>
SamplingKernel make(const SamplingCase&) {
  return Make();
}

const Entry kTable[] = {
#if defined(__x86_64__) || defined(_M_X64)
    {{"sampling", "avx512", needs::kAvx512, "every call, 512-bit"}, &any_case<SamplingCase>, nullptr,
     &make<sampling_kernel_avx512>},
    {{"sampling", "avx2", needs::kAvx2, "every call, 256-bit"}, &any_case<SamplingCase>, nullptr,
     &make<sampling_kernel_avx2>},
    {{"sampling", "sse2", needs::kSse2, "every call, 128-bit (x86-64 baseline)"}, &any_case<SamplingCase>, nullptr,
     &make<sampling_kernel_baseline>},
#else
    {{"sampling", "neon", needs::kNeon, "every call, 128-bit (aarch64 baseline)"}, &any_case<SamplingCase>, nullptr,
     &make<sampling_kernel_baseline>},
#endif
};

const Entry& select_entry() { return select(kTable, sampling_registry(), SamplingCase{}); }

}  // namespace

OpRegistry& sampling_registry() { return registry_of<kTable>("sampling"); }

SamplingKernel sampling_kernel() { return select_entry().make({}); }

}  // namespace pagedinfer::detail

namespace pagedinfer {
const char* sample_kernel_name() { return detail::select_entry().info.name; }
}  // namespace pagedinfer
