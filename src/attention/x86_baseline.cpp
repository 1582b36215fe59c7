// Paged attention at the x86-64 baseline (SSE2): 16 xmm registers, 4 lanes.
#include "attention/generic.hpp"
#include "common/simd/x86_sse2.hpp"

namespace pagedinfer::detail {

namespace {
struct Sse2Tuning {
  static constexpr int qk_rows = 4;
  static constexpr int pv_rows = 4;
  static constexpr int pv_cols = 2;
};
}  // namespace

AttentionItemFn attention_kernel_baseline(DType kv) { return select_attention_kernel<xsimd::sse2, Sse2Tuning>(kv); }

}  // namespace pagedinfer::detail
