// What the AVX-512 block kernels of src/gemm/ share: accumulator sets, streaming a tile's words
// from DRAM, the register blocking by rows, and a group's scales and offsets as vectors.
// Included only by the AVX-512 translation units (x86_avx512*.cpp, x86_amx.cpp).
#pragma once
#include "common/simd/x86_avx512.hpp"
#include "gemm/blocks.hpp"

namespace pagedinfer::detail {
namespace {


// How far ahead of its reads a kernel streaming a tile's words from DRAM prefetches them (4 and
// 16 KiB read less; docs/design/gemm.md).
constexpr int64_t kStreamAhead = 8192;

// Accumulator sets per (row, tile): a single row walks one tile at a time, so that each thread
// reads one sequential stream that the hardware prefetcher follows across tiles; up to four
// sets (by pair, half or word of the weight) keep its dot products independent.
template <int R>
constexpr int kSets = R == 1 ? 4 : 1;

// Zeroes the accumulators [rows][tiles][sets] of a block. This loop, and every other loop over
// acc in the blocks, is unrolled so that the indices are constants: GCC keeps an array that it
// indexes at run time in memory, a load and a store around each dot product.
template <class V, int R, int NT, int Sets>
inline void zero_accumulators(V (&acc)[R][NT][Sets]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int i = 0; i < NT; ++i)
#pragma GCC unroll 4
      for (int set = 0; set < Sets; ++set) acc[r][i][set] = V{};
}

// Reads a block's tiles as streams (tiles lie one after another), faster than the hardware
// prefetchers alone fetch them: as word jw is used, the line kStreamAhead bytes further on is
// requested. Past the last tile it only touches lines it never reads (a prefetch cannot fault).
template <int NT>
inline void prefetch_stream(const uint32_t* const (&tile)[NT], int64_t jw) {
  for (int i = 0; i < NT; ++i)
    prefetch_bytes(reinterpret_cast<const char*>(tile[i] + jw * kTile) + kStreamAhead, 64);
}

// Runs Block::compute<R, NT, S, kStream>: a block streams its tiles (prefetch_stream) when every
// weight word is read once per call, from DRAM: when all of the call's rows fit in one block of
// S rows, as in decode (and where the block allows it: kMayStream). With more rows, later row
// blocks find the words in L2. kStream is a template argument, so the word loop carries no
// test. One row streams where the selection table says so (compute_one_row).
template <class Block, int R, int NT, int S, bool kMayStream = true>
inline void compute_block(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
  if (kMayStream && j.m <= S) Block::template compute<R, NT, S, kMayStream>(j, t0, m0, c);
  else Block::template compute<R, NT, S, false>(j, t0, m0, c);
}

// compute_block for one row (S = 1): streams where the selection table says so
// (GemmJob::stream_one_row, dispatch.cpp).
template <class Block, int R, int NT>
inline void compute_one_row(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
  if (j.stream_one_row) compute_block<Block, R, NT, 1, true>(j, t0, m0, c);
  else compute_block<Block, R, NT, 1, false>(j, t0, m0, c);
}

// The run kernel of a one-row Block: a tile per block, or for gate_up weights the gate and up
// tiles together, which SiLU(gate) * up needs.
template <class Block>
RunKernel one_row_blocks(const QuantizedWeight::Storage& w) {
  using A = Avx512Arch;
  return w.gate_up ? &run_blocks<A, Block, 1, 2> : &run_blocks<A, Block, 1, 1>;
}

// That of a one-row Block<BITS> (FmaRowBlock, LimbBlock) for a 4- or 8-bit weight.
template <template <int> class Block>
RunKernel one_row_run(const QuantizedWeight::Storage& w) {
  return w.format.bits == 4 ? one_row_blocks<Block<4>>(w) : one_row_blocks<Block<8>>(w);
}

// One row: one tile at a time (see kSets). 2 to 4 rows: 4 x 4 tiles (2 x 4 for 2 rows: the last
// block computes the even rows that cover m, blocks.hpp); 5 to 8 rows: 8 x 2, one pass over the
// weights (in two 4-row passes the first waits on DRAM while the second, from L2, waits on the
// dot products). Many: MR x NT accumulators reuse each weight load MR times and each activation
// broadcast NT times; VNNI is fastest at 6 x 4 (24 accumulators), bf16 at 8 x 2.
template <class Block, int MR, int NT>
void choose_blocking(GemmKernel& k, const QuantizedWeight::Storage& w, int64_t m) {
  using A = Avx512Arch;
  if (m == 1 && w.gate_up) {  // SiLU(gate) * up needs the gate and up tiles in one block
    k.run = &run_blocks<A, Block, 1, 2>;
    k.act_rows = 1;
  } else if (m == 1) {
    k.run = &run_blocks<A, Block, 1, 1>;
    k.act_rows = 1;
  } else if (m <= 4) {
    k.run = &run_blocks<A, Block, 4, 4>;
    k.act_rows = 4;
  } else if (m <= 8) {
    k.run = &run_blocks<A, Block, 8, 2>;
    k.act_rows = 8;
  } else {
    k.run = &run_blocks<A, Block, MR, NT>;
    k.act_rows = MR;
  }
}

// The group params of blocks.hpp for one tile, vectorized.
struct GroupParams {
  __m512 scale, offset;
  GroupParams(const QuantizedWeight::Storage& w, int64_t g, int64_t t) {
    const int64_t base = w.param(t * kTile, g);
    scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.scales.data() + base)));
    switch (w.format.zero) {
      case QuantZero::symmetric: offset = _mm512_mul_ps(scale, _mm512_set1_ps(-float(1 << (w.format.bits - 1)))); break;
      case QuantZero::zero_point: {
        const __m512i z = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.zeros.data() + base)));
        offset = _mm512_mul_ps(scale, _mm512_sub_ps(_mm512_setzero_ps(), _mm512_cvtepi32_ps(z)));
        break;
      }
      case QuantZero::float_offset:
        offset = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.zeros.data() + base)));
        break;
      case QuantZero::none: offset = _mm512_setzero_ps(); break;  // 16-bit weights have no params to read
    }
  }
  // c = sum * scale + offset * act_sum, or with accumulate c += that.
  void flush(float* c, __m512 sum, float act_sum, bool accumulate) const {
    __m512 v = accumulate ? _mm512_fmadd_ps(sum, scale, _mm512_load_ps(c)) : _mm512_mul_ps(sum, scale);
    _mm512_store_ps(c, _mm512_fmadd_ps(offset, _mm512_set1_ps(act_sum), v));
  }
};

}  // namespace
}  // namespace pagedinfer::detail
