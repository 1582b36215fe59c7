// Paged attention for AVX-512 (F/BW/VL/DQ): 32 zmm registers.
#include "attention/generic.hpp"
#include "common/simd/x86_avx512.hpp"

namespace pagedinfer::detail {

namespace {
struct Avx512Tuning {
  static constexpr int qk_rows = 8;  // 8 accumulators + K + Q operands from L1
  static constexpr int pv_rows = 4;  // 4 x 4 accumulators + 4 V vectors + 1 broadcast
  static constexpr int pv_cols = 4;
};
}  // namespace

AttentionItemFn attention_kernel_avx512(DType kv) { return select_attention_kernel<Avx512Arch, Avx512Tuning>(kv); }

}  // namespace pagedinfer::detail
