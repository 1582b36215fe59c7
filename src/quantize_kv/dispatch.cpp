// The quantizing-write kernel table: which kernel runs a call (common/registry.hpp, kernels.hpp).
#include "common/registry.hpp"
#include "pagedinfer/kv_cache.hpp"
#include "quantize_kv/kernel.hpp"

namespace pagedinfer::detail {

namespace {

struct QuantizeCase {
  DType kv;
};
using Entry = KernelEntry<QuantizeCase, QuantizeRowKernel>;

template <QuantizeRowKernel (*Make)(DType)>
QuantizeRowKernel by_dtype(const QuantizeCase& c) {
  return Make(c.kv);
}

const Entry kTable[] = {
#if defined(__x86_64__) || defined(_M_X64)
    {{"quantize_kv", "avx512", needs::kAvx512, "fp8 / int8 KV codes, 512-bit"}, &any_case<QuantizeCase>, nullptr,
     &by_dtype<quantize_kv_kernel_avx512>},
    {{"quantize_kv", "avx2", needs::kAvx2, "fp8 / int8 KV codes, 256-bit"}, &any_case<QuantizeCase>, nullptr,
     &by_dtype<quantize_kv_kernel_avx2>},
    {{"quantize_kv", "sse2", needs::kSse2, "fp8 / int8 KV codes, 128-bit (x86-64 baseline)"},
     &any_case<QuantizeCase>, nullptr, &by_dtype<quantize_kv_kernel_baseline>},
#else
    {{"quantize_kv", "neon", needs::kNeon, "fp8 / int8 KV codes, 128-bit (aarch64 baseline)"},
     &any_case<QuantizeCase>, nullptr, &by_dtype<quantize_kv_kernel_baseline>},
#endif
};

const Entry& select_entry(DType kv) { return select(kTable, quantize_kv_registry(), QuantizeCase{kv}); }

}  // namespace

OpRegistry& quantize_kv_registry() { return registry_of<kTable>("quantize_kv"); }

QuantizeRowKernel quantize_kv_kernel(DType kv) { return select_entry(kv).make({kv}); }

}  // namespace pagedinfer::detail

namespace pagedinfer {
const char* quantize_kv_kernel_name(DType kv_dtype) { return detail::select_entry(kv_dtype).info.name; }
}  // namespace pagedinfer
