// Quantized GEMM for AVX-512 (F/BW/VL/DQ): the generic kernels, and one row of float
// activations on fp32 FMAs (FmaRowBlock).
#include "common/simd/x86_avx512.hpp"
#include "gemm/generic.hpp"
#include "gemm/x86_avx512_blocking.hpp"
#include "gemm/x86_avx512_pairs.hpp"

namespace pagedinfer::detail {
namespace {

using Storage = QuantizedWeight::Storage;
using A = Avx512Arch;

// One row of fp32 (or bf16 / fp16 made fp32) activations on fp32 FMAs (the table picks it for
// one row where neither fixed point nor bf16 dot products do): q become exact floats, element e
// of a word (layout.hpp's shift_of) meets x[k] in a broadcast FMA, which rounds only the sum:
// fp32 sums of exact products, as in the vdpbf16ps kernels.
//   int4: a shift puts element e's nibble in the low bits of each lane, whose 4 bits index a
//         16-float table (vpermps).
//   int8: byte e of each lane (lane_byte: one vpshufb), then cvtdq2ps.
//   16-bit (unquantized) values of kValues: bf16 by a shift or a mask, fp16 narrowed (vpmovdw)
//         and converted (vcvtph2ps); one sum over k, no group params.
// The generic kernels compute the even number of rows that covers m, so two for one.
template <int BITS, DType kValues = DType::bf16>
struct FmaRowBlockOf {
  static constexpr bool kSetsC = true;
  static constexpr int KPW = 32 / BITS;

  template <int R, int NT, int S>
  static void run(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    static_assert(R == 1 && S == 1, "one row, row-major activations");
    compute_one_row<FmaRowBlockOf, R, NT>(j, t0, m0, c);
  }

  // Element e of every lane of `word` as floats (table: the floats 0..15).
  static __m512 element(__m512i word, int e, __m512 table) {
    if constexpr (BITS == 16 && kValues == DType::bf16) {
      return _mm512_castsi512_ps(e == 0 ? _mm512_slli_epi32(word, 16) : _mm512_and_si512(word, _mm512_set1_epi32(int32_t(0xffff0000u))));
    } else if constexpr (BITS == 16) {
      return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(e == 0 ? word : _mm512_srli_epi32(word, 16)));
    } else if constexpr (BITS == 4) {
      const int shift = QuantizedWeight::Storage::shift_of(4, e);
      return _mm512_permutexvar_ps(shift == 0 ? word : _mm512_srli_epi32(word, unsigned(shift)), table);
    } else {
      return _mm512_cvtepi32_ps(lane_byte(word, e));
    }
  }

  template <int R, int NT, int S, bool kStream>
  static void compute(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    const Storage& w = *j.w;
    // In a register (in_register): as a memory operand, a load beside each FMA's broadcast.
    const __m512 table = in_register(_mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const float* x = reinterpret_cast<const float*>(j.act.unit(m0, 0));  // fp32, packed k order
    const uint32_t* tile[NT];
    for (int i = 0; i < NT; ++i) tile[i] = w.tile(t0 + i);
    const int64_t words_per_group = w.group / KPW;
    for (int64_t g = 0; g < w.groups; ++g) {
      __m512 acc[1][NT][kSets<1>];
      zero_accumulators(acc);
      // kWords words per step, so that 16-bit words (two k each) also feed four sets.
      constexpr int kWords = BITS == 16 ? 2 : 1;
      for (int64_t j0 = g * words_per_group; j0 < (g + 1) * words_per_group; j0 += kWords) {
#pragma GCC unroll 2
        for (int u = 0; u < kWords; ++u) {
          const int64_t jw = j0 + u;
          if constexpr (kStream) prefetch_stream(tile, jw);
#pragma GCC unroll 2
          for (int i = 0; i < NT; ++i) {
            const __m512i word = _mm512_loadu_si512(tile[i] + jw * kTile);
#pragma GCC unroll 8
            for (int e = 0; e < KPW; ++e) {
              __m512& a = acc[0][i][(u * KPW + e) % kSets<1>];
              a = _mm512_fmadd_ps(element(word, e, table), _mm512_set1_ps(x[jw * KPW + e]), a);
            }
          }
        }
      }
#pragma GCC unroll 2
      for (int i = 0; i < NT; ++i) {
        const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[0][i][0], acc[0][i][1]),
                                         _mm512_add_ps(acc[0][i][2], acc[0][i][3]));
        if constexpr (BITS == 16) {  // one group, no params
          _mm512_store_ps(c + i * kTile, sum);
        } else {
          const GroupParams gp(w, g, t0 + i);
          gp.flush(c + i * kTile, sum, j.act_sums[m0 * w.groups + g], g > 0);
        }
      }
    }
  }
};

template <int BITS>
using FmaRowBlock = FmaRowBlockOf<BITS>;

}  // namespace

GemmKernel gemm_avx512_generic(const GemmCase& c) { return generic_gemm_kernel<A>(c); }

GemmKernel gemm_avx512_fma_row(const GemmCase& c) {
  GemmKernel k = generic_gemm_kernel<A>(c);  // fp32 x prepared, row-major
  const Storage& w = *c.w;
  if (w.quantized()) k.run = one_row_run<FmaRowBlock>(w);
  else if (w.format.dtype == DType::bf16) k.run = one_row_blocks<FmaRowBlockOf<16, DType::bf16>>(w);
  else k.run = one_row_blocks<FmaRowBlockOf<16, DType::f16>>(w);
  return k;
}

}  // namespace pagedinfer::detail
