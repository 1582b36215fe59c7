// Quantized GEMM for AVX-512 with VNNI and BF16 (Zen 4+, Cooper Lake, Sapphire Rapids):
//   W4A16 / W8A16 with bf16 x: q (int8: each nibble) become exact bf16 through a 32-entry table
//     (vpermw) and meet x in bf16 dot products (vdpbf16ps), 32 products per instruction.
//   W8A8 / W4A8: u8 q times s8 activations in VNNI dot products (vpdpbusd), 64 per instruction,
//     exact int32 group sums.
// Everything else falls back to the AVX-512 generic kernels (an empty GemmKernel here).
#include <cstring>

#include "common/simd/x86_avx512.hpp"
#include "gemm/generic.hpp"
#include "gemm/x86_avx512_panel.hpp"
#include "gemm/x86_avx512_prepare.hpp"

namespace pagedinfer::detail {
namespace {

using Storage = QuantizedWeight::Storage;

inline int32_t load32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Accumulator sets per (row, tile): a single row walks one tile at a time, so that each thread
// reads one sequential stream that the hardware prefetcher follows across tiles; four sets
// (by step or by word) keep the dot products independent.
template <int R>
constexpr int kSets = R == 1 ? 4 : 1;

// One row reads its tiles as streams (tiles lie one after another), faster than the hardware
// prefetchers alone fetch them: as word jw is used, the line kStreamAhead bytes further on is
// requested. Measured on M = 1, 14336 x 4096, alternating in one process: +10% (W4A16), +14%
// (W8A16), +2% (W4A8) at 8 KiB; 4 KiB and 16 KiB gained less. Past the last tile it only
// touches lines it never reads (a prefetch cannot fault).
constexpr int64_t kStreamAhead = 8192;
template <int NT>
inline void prefetch_stream(const uint32_t* const (&tile)[NT], int64_t jw) {
  for (int i = 0; i < NT; ++i) prefetch_bytes(reinterpret_cast<const char*>(tile[i] + jw * kTile) + kStreamAhead, 64);
}

// bf16 bits of scale * (i & 15) for i in [0, 32): vpermw reads 5 index bits, the fifth of
// which is the next nibble's low bit, so both halves of the table hold the same 16 values.
inline __m512i nibble_to_bf16_table(float scale) {
  alignas(64) uint16_t t[32];
  for (int i = 0; i < 32; ++i) t[i] = float_to_bf16_bits(scale * float(i & 15));
  return _mm512_load_si512(t);
}

// bf16 dot products on q made exact bf16 by nibble tables. Per 32-bit lane, step s (a 16-bit
// shift by 4s) puts one nibble of each half in its low bits:
//   int4: the pair (2s, 2s + 1), table of q, x pair s of the word's 8 k.
//   int8: low then high nibble of k (0, 2) for s = 0, 1 and of k (1, 3) for s = 2, 3, tables of
//         q_lo and 16 q_hi; x pairs (0, 2) and (1, 3) (WordOrder::bf16_int8).
template <int BITS>
struct Bf16Block {
  static constexpr bool kSetsC = true;  // the first group's flush writes c (run_blocks)
  static constexpr int kKPerWord = 32 / BITS;
  static constexpr int kUnitsPerWord = kKPerWord / 2;  // x pairs per word

  template <int R, int NT, int S>
  static void run(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    const Storage& w = *j.w;
    const __m512i low = nibble_to_bf16_table(1.f), high = nibble_to_bf16_table(16.f);
    const char* act = j.act.unit(m0, 0);  // S rows interleaved: pair u of row r at (u * S + r) * 4
    const uint32_t* tile[NT];
    for (int i = 0; i < NT; ++i) tile[i] = w.tile(t0 + i);
    const int64_t words_per_group = w.group / kKPerWord;
    for (int64_t g = 0; g < w.groups; ++g) {
      __m512 acc[R][NT][kSets<R>];
      for (auto& a : acc)
        for (auto& b : a)
          for (auto& v : b) v = _mm512_setzero_ps();
      for (int64_t jw = g * words_per_group; jw < (g + 1) * words_per_group; ++jw) {
        __m512i word[NT];
        if constexpr (R == 1) prefetch_stream(tile, jw);
        for (int i = 0; i < NT; ++i) word[i] = _mm512_loadu_si512(tile[i] + jw * kTile);
        for (int step = 0; step < 4; ++step) {
          const __m512i& table = BITS == 8 && step % 2 ? high : low;
          const int64_t unit = jw * kUnitsPerWord + (BITS == 4 ? step : step / 2);
          __m512i q[NT];
          for (int i = 0; i < NT; ++i)
            q[i] = _mm512_permutexvar_epi16(step == 0 ? word[i] : _mm512_srli_epi16(word[i], unsigned(4 * step)), table);
          for (int r = 0; r < R; ++r) {
            const __m512i x = _mm512_set1_epi32(load32(act + (unit * S + r) * 4));
            for (int i = 0; i < NT; ++i) {
              __m512& a = acc[r][i][step % kSets<R>];
              a = Bf16Dot::dot(a, q[i], x);
            }
          }
        }
      }
      for (int i = 0; i < NT; ++i) {
        const GroupParams gp(w, g, t0 + i);
        for (int r = 0; r < R; ++r) {
          __m512 sum = acc[r][i][0];
          for (int set = 1; set < kSets<R>; ++set) sum = _mm512_add_ps(sum, acc[r][i][set]);
          gp.flush(c + (r * NT + i) * kTile, sum, true, j.act_sums[(m0 + r) * w.groups + g], g == 0);
        }
      }
    }
  }
};

// The nibbles of one int4 word of a tile as u8 (half 0: low nibbles, half 1: high), read from
// memory each time, and a broadcast unit of activations. Volatile asm pins them in the order
// written: with plain intrinsics GCC 12 keeps the words and both halves' nibbles live at once
// and CSEs the broadcasts, more vectors than registers beside 24 accumulators, and spilled
// accumulators in the innermost loop (measured: 6 x 4 W4A8 at M = 512 went from 0.63 to 0.72
// of the VNNI peak on two threads once it stopped).
inline __m512i int4_nibbles(const uint32_t* word, int half, __m512i low) {
  __m512i q;
  const __m512i& m = *reinterpret_cast<const __m512i*>(word);
  if (half == 0) asm volatile("vpandd %[m], %[low], %[q]" : [q] "=v"(q) : [m] "m"(m), [low] "v"(low));
  else asm volatile("vpsrld $4, %[m], %[q]\n\tvpandd %[q], %[low], %[q]" : [q] "=&v"(q) : [m] "m"(m), [low] "v"(low));
  return q;
}
inline __m512i broadcast_unit(const char* unit) {
  __m512i x;
  asm volatile("vpbroadcastd %[m], %[x]" : [x] "=v"(x) : [m] "m"(*reinterpret_cast<const int32_t*>(unit)));
  return x;
}

template <int BITS>
struct VnniBlock {
  static constexpr bool kSetsC = true;
  template <int R, int NT, int S>
  static void run(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    const Storage& w = *j.w;
    constexpr int KPW = 32 / BITS;
    const __m512i low_nibbles = _mm512_set1_epi32(0x0f0f0f0f);
    const char* act = j.act.unit(m0, 0);  // S rows interleaved: unit u of row r at (u * S + r) * 4
    const uint32_t* tile[NT];
    for (int i = 0; i < NT; ++i) tile[i] = w.tile(t0 + i);
    const int64_t words_per_group = w.group / KPW;
    for (int64_t g = 0; g < w.groups; ++g) {
      // Every loop over acc is unrolled so that its indices are constants: GCC keeps an array it
      // indexes at run time in memory.
      __m512i acc[R][NT][kSets<R>];
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int i = 0; i < NT; ++i)
#pragma GCC unroll 4
          for (int set = 0; set < kSets<R>; ++set) acc[r][i][set] = _mm512_setzero_si512();
      for (int64_t jw = g * words_per_group; jw < (g + 1) * words_per_group; ++jw) {
        if constexpr (R == 1) prefetch_stream(tile, jw);
        if constexpr (BITS == 8) {
          __m512i word[NT];
          for (int i = 0; i < NT; ++i) word[i] = _mm512_loadu_si512(tile[i] + jw * kTile);
          for (int r = 0; r < R; ++r) {
            const __m512i x = _mm512_set1_epi32(load32(act + (jw * S + r) * 4));
            for (int i = 0; i < NT; ++i) {
              __m512i& a = acc[r][i][jw % kSets<R>];
              a = VnniDot::dot(a, word[i], x);
            }
          }
        } else {
          // Bytes (0, 4, 1, 5) and (2, 6, 3, 7) of the word's 8 k; prepare.hpp stored the
          // activations in this order.
#pragma GCC unroll 2
          for (int half = 0; half < 2; ++half) {
            __m512i q[NT];
#pragma GCC unroll 4
            for (int i = 0; i < NT; ++i) q[i] = int4_nibbles(tile[i] + jw * kTile, half, low_nibbles);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
              const __m512i x = broadcast_unit(act + ((jw * 2 + half) * S + r) * 4);
#pragma GCC unroll 4
              for (int i = 0; i < NT; ++i) {
                __m512i& a = acc[r][i][(2 * jw + half) % kSets<R>];
                a = VnniDot::dot(a, q[i], x);
              }
            }
          }
        }
      }
#pragma GCC unroll 4
      for (int i = 0; i < NT; ++i) {
        const GroupParams gp(w, g, t0 + i);
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          __m512i sum = acc[r][i][0];
#pragma GCC unroll 4
          for (int set = 1; set < kSets<R>; ++set) sum = _mm512_add_epi32(sum, acc[r][i][set]);
          gp.flush(c + (r * NT + i) * kTile, _mm512_cvtepi32_ps(sum), true, j.act_sums[(m0 + r) * w.groups + g],
                   g == 0);
        }
      }
    }
  }
};

using A = Avx512Arch;

template <DType X>
PrepareKernel int8_prepare(int bits) {
  return bits == 4 ? &Avx512PrepareI8<X, WordOrder::vnni_int4>::run : &Avx512PrepareI8<X, WordOrder::natural>::run;
}

// One row: one tile at a time (see kSets). 2 to 4 rows: 4 x 4 tiles (2 x 4 for 2 rows: the last
// block computes the even rows that cover m, blocks.hpp); 5 to 8 rows: 8 x 2, one pass over the
// weights (two 4-row passes measured 9-16% slower at M = 8: the first pass waits on DRAM while
// the second, from L2, waits on the dot products). Many: MR x NT accumulators reuse each weight
// load MR times and each activation broadcast NT times; VNNI measured best at 6 x 4 (24
// accumulators), bf16 at 8 x 2.
template <class Block, int MR, int NT>
void choose_blocking(GemmKernel& k, const Storage& w, int64_t m) {
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

template <class Unpack, class Dot, int MR, int NT>
void use_panel(GemmKernel& k) {
  k.run = &run_panel_blocks<Unpack, Dot, MR, NT>;
  k.act_rows = MR;
}

}  // namespace

GemmKernel gemm_kernel_avx512_bf16(const Storage& w, LinearActivations mode, DType x, int64_t m) {
  GemmKernel k;
  // Many rows of W8A16 run on unpacked panels (x86_avx512_panel.hpp). Up to 8 rows the nibble
  // tables of Bf16Block overlap the weights' DRAM stream better than the panel's unpack burst:
  // M = 5-8, 14336 x 4096 from DRAM, alternated in one process: 1.19-1.34x (with the weights in
  // L3, M = 8 on two threads: 0.95x).
  const bool panel = m > 8;
  if (mode == LinearActivations::int8_per_token) {
    k.compute = ComputeType::i8;
    switch (x) {
      case DType::f32: k.prepare = int8_prepare<DType::f32>(w.format.bits); break;
      case DType::bf16: k.prepare = int8_prepare<DType::bf16>(w.format.bits); break;
      case DType::f16: k.prepare = int8_prepare<DType::f16>(w.format.bits); break;
    }
    if (w.format.bits == 4) choose_blocking<VnniBlock<4>, 6, 4>(k, w, m);
    else choose_blocking<VnniBlock<8>, 6, 4>(k, w, m);
  } else if (x == DType::bf16) {
    k.compute = ComputeType::bf16;
    if (w.format.bits == 4) {
      k.prepare = &Prepare<A, DType::bf16>::bf16<WordOrder::natural>;
      choose_blocking<Bf16Block<4>, 8, 2>(k, w, m);
    } else if (panel) {
      k.prepare = &Prepare<A, DType::bf16>::bf16<WordOrder::natural>;
      use_panel<Int8ToBf16, Bf16Dot, 8, 2>(k);
    } else {
      k.prepare = &Prepare<A, DType::bf16>::bf16<WordOrder::bf16_int8>;
      choose_blocking<Bf16Block<8>, 8, 2>(k, w, m);
    }
  }
  return k;
}

}  // namespace pagedinfer::detail
