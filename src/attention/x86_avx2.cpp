// Paged attention for AVX2 + FMA + F16C: 16 ymm registers.
#include "attention/generic.hpp"
#include "common/simd/x86_avx2.hpp"

namespace pagedinfer::detail {

namespace {
struct Avx2Tuning {
  static constexpr int qk_rows = 4;  // 4 accumulators + K, leaving room for the compiler
  static constexpr int pv_rows = 4;  // 4 x 2 accumulators + 2 V vectors + 1 broadcast
  static constexpr int pv_cols = 2;
};
}  // namespace

AttentionItemFn attention_kernel_avx2(DType kv) { return select_attention_kernel<Avx2Arch, Avx2Tuning>(kv); }

}  // namespace pagedinfer::detail
