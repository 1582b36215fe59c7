// The conversion kernel table: which kernel runs a call (common/registry.hpp, kernels.hpp).
#include "common/registry.hpp"
#include "convert/kernel.hpp"

namespace pagedinfer::detail {

namespace {

struct ConvertCase {
  DType src, dst;
};
using Entry = KernelEntry<ConvertCase, ConvertKernel>;

template <ConvertKernel (*Make)(DType, DType)>
ConvertKernel by_dtypes(const ConvertCase& c) {
  return Make(c.src, c.dst);
}

const Entry kTable[] = {
#if defined(__x86_64__) || defined(_M_X64)
    {{"convert", "avx512", needs::kAvx512, "every dtype pair, 512-bit"}, &any_case<ConvertCase>, nullptr,
     &by_dtypes<convert_kernel_avx512>},
    {{"convert", "avx2", needs::kAvx2, "every dtype pair, 256-bit (F16C for fp16)"}, &any_case<ConvertCase>, nullptr,
     &by_dtypes<convert_kernel_avx2>},
    {{"convert", "sse2", needs::kSse2, "every dtype pair, 128-bit (x86-64 baseline)"}, &any_case<ConvertCase>,
     nullptr, &by_dtypes<convert_kernel_baseline>},
#else
    {{"convert", "neon", needs::kNeon, "every dtype pair, 128-bit (aarch64 baseline)"}, &any_case<ConvertCase>,
     nullptr, &by_dtypes<convert_kernel_baseline>},
#endif
};

const Entry& select_entry(DType src, DType dst) { return select(kTable, convert_registry(), ConvertCase{src, dst}); }

}  // namespace

OpRegistry& convert_registry() { return registry_of<kTable>("convert"); }

ConvertKernel convert_kernel(DType src, DType dst) { return select_entry(src, dst).make({src, dst}); }

}  // namespace pagedinfer::detail

namespace pagedinfer {
const char* convert_kernel_name(DType src_type, DType dst_type) {
  return detail::select_entry(src_type, dst_type).info.name;
}
}  // namespace pagedinfer
