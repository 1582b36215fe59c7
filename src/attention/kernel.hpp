// The contract between paged_attention's driver (run.cpp) and the per-ISA kernels.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "pagedinfer/attention.hpp"

namespace pagedinfer::detail {

// KV tokens per tile. 32 keeps a tile of V rows (32 x 128 x bf16 = 8 KiB) in L1 while the
// tile's scores are re-read by every column block of P.V, and amortizes the online-softmax
// rescale of the accumulators over 32 keys.
constexpr int32_t kAttnTile = 32;
// Query rows (tokens x heads of a KV group) targeted per work item: enough rows that each
// K/V element loaded is used many times in prefill, few enough that the rows' accumulators
// stay in L1/L2.
constexpr int32_t kAttnRowsTarget = 64;

// Tiles whose row addresses a work item holds at once: the one being computed and the next two,
// whose rows are being fetched (driver.hpp).
constexpr int32_t kAttnSlots = 3;

namespace {  // internal linkage: ISA TUs include this (see common/scalar_convert.hpp)

inline int32_t round_up(int32_t x, int32_t m) { return (x + m - 1) / m * m; }

// Per-thread scratch of one work item, in floats from a 64-byte aligned base. Every region
// starts on a 64-byte boundary. Accumulator rows are padded to 32 floats, the column block of
// the bf16 dot-product kernel.
struct AttentionScratchLayout {
  int32_t rows, q_stride, v_stride;
  std::size_t q, s, acc, m, l, ptrs, scales, vpack;  // offsets in floats (ptrs: K and V row addresses of
                                                    // kAttnSlots tiles; scales: K and V scales of one)
  std::size_t bytes;                         // total, a multiple of 64

  AttentionScratchLayout(int32_t rows_, int32_t dqk, int32_t dv)
      : rows(rows_), q_stride(round_up(dqk, 16)), v_stride(round_up(dv, 32)) {
    q = 0;
    s = q + std::size_t(rows) * q_stride;
    acc = s + std::size_t(rows) * kAttnTile;
    m = acc + std::size_t(rows) * v_stride;
    l = m + std::size_t(round_up(rows, 16));
    ptrs = l + std::size_t(rows) * 16;  // l: 16 lane-partial sums per row
    scales = ptrs + 2 * kAttnSlots * kAttnTile * sizeof(void*) / sizeof(float);
    vpack = scales + 2 * kAttnTile;
    // vpack (bf16 kernel): one tile of V rows as bf16 token pairs, [kAttnTile / 2][v_stride][2],
    // or before that, the tile's K transposed into pairs, [round_up(dqk, 32) / 2][kAttnTile][2]
    bytes = vpack * sizeof(float) + std::size_t(kAttnTile) * std::max(v_stride, round_up(dqk, 32)) * 2;
    bytes = (bytes + 63) / 64 * 64;
  }
};

}  // namespace

// Where one work item puts its rows: the final output (partial_out == nullptr) or a split's
// partial slot ([rows_max, v_stride] floats of normalized output and [rows_max] lse).
struct AttentionItemOutput {
  float* partial_out = nullptr;
  float* partial_lse = nullptr;
};

// How a work item fetches the K / V rows of the tiles to come (a block table scatters pages, so
// the hardware prefetchers cannot find the next one; driver.hpp):
//   rows                every line of the next two tiles, by software prefetches
//   rows_and_streams    also, where one KV head's rows of a page are contiguous (HND, MLA
//                       latent), the first two lines of each 4 KiB of them four tiles ahead:
//                       that starts the core's L2 stream prefetcher on each, which fetches
//                       without holding one of L1's few miss buffers per line
// The registry (dispatch.cpp) keeps each vendor's measured choice (docs/design/attention.md).
enum class KvFetch { rows, rows_and_streams };

// One ISA's kernel for one KV dtype: computes a work item's rows. The params have been
// validated; group = num_q_heads / num_kv_heads.
using AttentionItemFn = void (*)(const AttentionParams& p, const AttentionWorkItem& item, int32_t group,
                                 AttentionItemOutput dst, float* scratch, KvFetch fetch);

// A selected kernel and the fetch it runs with.
struct AttentionItemKernel {
  AttentionItemFn fn;
  KvFetch fetch;
  void operator()(const AttentionParams& p, const AttentionWorkItem& item, int32_t group, AttentionItemOutput dst,
                  float* scratch) const {
    fn(p, item, group, dst, scratch, fetch);
  }
};

// A finished row's sink: with p.sinks, Z grows by exp(sink), so lse becomes
// log(exp(lse) + exp(sink)) and the output scales by the returned factor; else factor 1.
// lse: of the keys alone (-inf if none), updated in place.
float apply_attention_sink(const AttentionParams& p, int32_t head, float& lse);

// Writes one finished row (merge path): applies the sink, rounds to out's dtype, stores lse if
// requested. o: the normalized output in fp32 [head_dim_v].
void write_attention_row(const AttentionParams& p, int64_t token, int32_t head, const float* o, float lse);

// dispatch.cpp: the kernel the table (or a forced kernel) picks for these dtypes.
AttentionItemKernel attention_kernel(DType q_dtype, DType kv_dtype);

// One per ISA translation unit, registered in dispatch.cpp; on aarch64 only the baseline (NEON).
AttentionItemFn attention_kernel_baseline(DType kv_dtype);
AttentionItemFn attention_kernel_avx2(DType kv_dtype);
AttentionItemFn attention_kernel_avx512(DType kv_dtype);
AttentionItemFn attention_kernel_avx512_bf16();  // bf16 q and KV only

}  // namespace pagedinfer::detail
