// Quantized GEMM on AVX-VNNI (the 256-bit VEX form: Alder Lake, Sapphire Rapids, Zen 5): W8A8 /
// W4A8 for AVX2 CPUs, u8 q times s8 activations in vpdpbusd, exact int32 group sums. A tile's
// word (16 columns) is two 8-lane halves; int4 words give their low and high nibbles as the
// bytes (0, 4, 1, 5) and (2, 6, 3, 7) of their 8 k (layout.hpp), the order the activations are
// prepared in (WordOrder::vnni_int4).
#include <cstring>

#include "common/simd/x86_avx2.hpp"
#include "gemm/generic.hpp"

namespace pagedinfer::detail {
namespace {

using Storage = QuantizedWeight::Storage;
using A = Avx2Arch;

// A group's scales and offsets (blocks.hpp's formula) for the two halves of one tile.
struct Avx2GroupParams {
  __m256 scale[2], offset[2];
  Avx2GroupParams(const Storage& w, int64_t g, int64_t t) {
    const int64_t base = w.param(t * kTile, g);
    for (int v = 0; v < 2; ++v) {
      const auto* s = reinterpret_cast<const __m128i*>(w.scales.data() + base + 8 * v);
      const auto* z = reinterpret_cast<const __m128i*>(w.zeros.data() + base + 8 * v);
      scale[v] = _mm256_cvtph_ps(_mm_loadu_si128(s));
      offset[v] = _mm256_setzero_ps();
      switch (w.format.zero) {
        case QuantZero::symmetric: offset[v] = _mm256_mul_ps(scale[v], _mm256_set1_ps(-float(1 << (w.format.bits - 1)))); break;
        case QuantZero::zero_point:
          offset[v] = _mm256_mul_ps(scale[v], _mm256_sub_ps(_mm256_setzero_ps(),
                                                            _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(_mm_loadu_si128(z)))));
          break;
        case QuantZero::float_offset: offset[v] = _mm256_cvtph_ps(_mm_loadu_si128(z)); break;
        case QuantZero::none: break;  // 16-bit weights never run here (int8 x)
      }
    }
  }
};

template <int BITS>
struct Avx2VnniBlock {
  static constexpr bool kSetsC = false;  // adds into a zeroed c (run_blocks)
  static constexpr int KPW = 32 / BITS, kHalves = BITS == 4 ? 2 : 1;

  // Half `half` of a word as u8 bytes: the word itself (int8), or its low / high nibbles.
  static __m256i bytes(__m256i word, int half) {
    if constexpr (BITS == 8) return word;
    const __m256i low = _mm256_set1_epi32(0x0f0f0f0f);
    return _mm256_and_si256(half == 0 ? word : _mm256_srli_epi32(word, 4), low);
  }

  template <int R, int NT, int S>
  static void run(const GemmJob& j, int64_t t0, int64_t m0, float* c) {
    const Storage& w = *j.w;
    const char* act = j.act.unit(m0, 0);  // S rows interleaved: unit u of row r at (u * S + r) * 4
    const uint32_t* tile[NT];
    for (int i = 0; i < NT; ++i) tile[i] = w.tile(t0 + i);
    const int64_t words_per_group = w.group / KPW;
    for (int64_t g = 0; g < w.groups; ++g) {
      __m256i acc[R][NT][2];
      for (int r = 0; r < R; ++r)
        for (int i = 0; i < NT; ++i) acc[r][i][0] = acc[r][i][1] = _mm256_setzero_si256();
      for (int64_t jw = g * words_per_group; jw < (g + 1) * words_per_group; ++jw) {
        __m256i word[NT][2];
        for (int i = 0; i < NT; ++i)
          for (int v = 0; v < 2; ++v)
            word[i][v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile[i] + jw * kTile + 8 * v));
        for (int half = 0; half < kHalves; ++half)
          for (int r = 0; r < R; ++r) {
            int32_t unit;
            std::memcpy(&unit, act + ((jw * kHalves + half) * S + r) * 4, 4);
            const __m256i x = _mm256_set1_epi32(unit);
            for (int i = 0; i < NT; ++i)
              for (int v = 0; v < 2; ++v) acc[r][i][v] = _mm256_dpbusd_avx_epi32(acc[r][i][v], bytes(word[i][v], half), x);
          }
      }
      for (int i = 0; i < NT; ++i) {
        const Avx2GroupParams gp(w, g, t0 + i);
        for (int r = 0; r < R; ++r) {
          const __m256 act_sum = _mm256_set1_ps(j.act_sums[(m0 + r) * w.groups + g]);
          for (int v = 0; v < 2; ++v) {
            float* cp = c + (r * NT + i) * kTile + 8 * v;
            const __m256 sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][i][v]), gp.scale[v], _mm256_load_ps(cp));
            _mm256_store_ps(cp, _mm256_fmadd_ps(gp.offset[v], act_sum, sum));
          }
        }
      }
    }
  }
};

// Two tiles per block (a gate_up weight's gate and up tiles meet in one block); one row alone,
// or two interleaved rows: 8 accumulators, 4 words and a broadcast in the 16 registers.
template <int BITS>
void choose_blocking(GemmKernel& k, int64_t m) {
  k.act_rows = m == 1 ? 1 : 2;
  k.run = m == 1 ? &run_blocks<A, Avx2VnniBlock<BITS>, 1, 2> : &run_blocks<A, Avx2VnniBlock<BITS>, 2, 2>;
}

template <DType X>
PrepareKernel prepare(int bits) {
  return bits == 4 ? &Prepare<A, X>::template i8<WordOrder::vnni_int4> : &Prepare<A, X>::template i8<WordOrder::natural>;
}

}  // namespace

GemmKernel gemm_avx2_vnni(const GemmCase& c) {
  GemmKernel k;
  k.compute = ComputeType::i8;
  k.unit = LinearUnit::int8_dot;
  const int bits = c.w->format.bits;
  switch (c.x) {
    case DType::f32: k.prepare = prepare<DType::f32>(bits); break;
    case DType::bf16: k.prepare = prepare<DType::bf16>(bits); break;
    case DType::f16: k.prepare = prepare<DType::f16>(bits); break;
    default: break;  // validated: activations are float types
  }
  if (bits == 4) choose_blocking<4>(k, c.m);
  else choose_blocking<8>(k, c.m);
  return k;
}

}  // namespace pagedinfer::detail
