// Paged attention for aarch64 NEON (the architecture's baseline): 32 q registers, 4 lanes.
#include "attention/generic.hpp"
#include "common/simd/arm_neon.hpp"

namespace pagedinfer::detail {

namespace {
struct NeonTuning {
  static constexpr int qk_rows = 8;
  static constexpr int pv_rows = 4;
  static constexpr int pv_cols = 4;
};
}  // namespace

AttentionItemFn attention_kernel_baseline(DType kv) {
  return select_attention_kernel<xsimd::neon64, NeonTuning>(kv);
}

}  // namespace pagedinfer::detail
