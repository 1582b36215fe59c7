// The attention kernel table: which kernel runs a call (common/registry.hpp, kernels.hpp).
#include "attention/kernel.hpp"
#include "common/cpu_vendor.hpp"
#include "common/registry.hpp"

namespace pagedinfer::detail {

namespace {

struct AttentionCase {
  DType q, kv;
};
using Entry = KernelEntry<AttentionCase, AttentionItemFn>;

// bf16 dot products need q and K in bf16 as given: rounding an fp32 or fp16 q would lose what
// the fp32 kernels keep.
bool bf16_q_and_kv(const AttentionCase& c) { return c.q == DType::bf16 && c.kv == DType::bf16; }

template <AttentionItemFn (*Make)(DType)>
AttentionItemFn by_kv_dtype(const AttentionCase& c) {
  return Make(c.kv);
}

const Entry kTable[] = {
#if defined(__x86_64__) || defined(_M_X64)
    {{"attention", "avx512_bf16_dot", needs::kAvx512Bf16,
      "bf16 q and KV: QK and PV on vdpbf16ps, P rounded to bf16 (attention.hpp)"},
     &bf16_q_and_kv, nullptr, [](const AttentionCase&) { return attention_kernel_avx512_bf16(); }},
    {{"attention", "avx512_fp32", needs::kAvx512, "every dtype: fp32 FMA on exactly widened q, K, V"},
     &any_case<AttentionCase>, nullptr, &by_kv_dtype<attention_kernel_avx512>},
    {{"attention", "avx2_fp32", needs::kAvx2, "every dtype: fp32 FMA, 256-bit"},
     &any_case<AttentionCase>, nullptr, &by_kv_dtype<attention_kernel_avx2>},
    {{"attention", "sse2_fp32", needs::kSse2, "every dtype: fp32, 128-bit (x86-64 baseline)"},
     &any_case<AttentionCase>, nullptr, &by_kv_dtype<attention_kernel_baseline>},
#else
    {{"attention", "neon_fp32", needs::kNeon, "every dtype: fp32 FMA, 128-bit (aarch64 baseline)"},
     &any_case<AttentionCase>, nullptr, &by_kv_dtype<attention_kernel_baseline>},
#endif
};

const Entry& select_entry(DType q, DType kv) { return select(kTable, attention_registry(), AttentionCase{q, kv}); }

// AMD cores (Zen 5 measured) read scattered pages faster with the L2 streams started on top of
// the row prefetches; Intel and Arm cores keep the row prefetches they were measured with.
KvFetch kv_fetch() { return cpu_vendor() == CpuVendor::amd ? KvFetch::rows_and_streams : KvFetch::rows; }

}  // namespace

OpRegistry& attention_registry() { return registry_of<kTable>("attention"); }

AttentionItemKernel attention_kernel(DType q, DType kv) { return {select_entry(q, kv).make({q, kv}), kv_fetch()}; }

}  // namespace pagedinfer::detail

namespace pagedinfer {
const char* attention_kernel_name(DType q_dtype, DType kv_dtype) { return detail::select_entry(q_dtype, kv_dtype).info.name; }
const char* attention_kv_fetch_name() { return detail::kv_fetch() == detail::KvFetch::rows ? "rows" : "rows_and_streams"; }
}  // namespace pagedinfer
