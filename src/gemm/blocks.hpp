// The run-kernel skeleton every ISA shares: walk blocks of NT tiles x up to MR rows, let a
// micro-kernel accumulate each block into an fp32 tile c, then apply the epilogue of
// linear.hpp (row scale, bias, SiLU(gate) * up, residual) and store y once.
// Included by the ISA TUs after their common/simd/<isa>.hpp.
#pragma once
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common/simd/load.hpp"
#include "common/static_count.hpp"
#include "gemm/kernel.hpp"

namespace pagedinfer::detail {
namespace {

constexpr int64_t kTile = QuantizedWeight::Storage::kTileN;

// The fp16 scales of (group g, tile t) and the offsets of kernel.hpp's formula, as fp32:
// offset = -scale * z (symmetric: z = 2^(bits-1)), or m (float_offset). Quantized weights only.
inline void group_params(const QuantizedWeight::Storage& w, int64_t g, int64_t t, float* scale, float* offset) {
  const int64_t base = w.param(t * kTile, g);
  for (int l = 0; l < kTile; ++l) {
    scale[l] = f16_bits_to_float(w.scales[base + l]);
    switch (w.format.zero) {
      case QuantZero::symmetric: offset[l] = -scale[l] * float(1 << (w.format.bits - 1)); break;
      case QuantZero::zero_point: offset[l] = -scale[l] * float(w.zeros[base + l]); break;
      case QuantZero::float_offset: offset[l] = f16_bits_to_float(w.zeros[base + l]); break;
      case QuantZero::none: offset[l] = 0.f; break;  // 16-bit weights have no params to read
    }
  }
}

template <class A, DType Y>
struct Epilogue {
  using F = xsimd::batch<float, A>;
  static constexpr int W = F::size;
  static constexpr int64_t kYSize = Y == DType::f32 ? 4 : 2;

  static float silu(float v) { return v / (1.f + std::exp(-v)); }
  static F silu(F v) { return v / (F(1.f) + xsimd::exp(-v)); }

  // c: [rows][nt * 16] for packed tiles t0.., rows m0..
  static void apply(const GemmJob& j, const float* c, int nt, int64_t t0, int64_t m0, int rows) {
    const int ld = nt * int(kTile);
    if (!j.bias && !j.residual && !j.silu_mul && !j.w->gate_up && (t0 + nt) * kTile <= j.n_out)
      return scale_rows(j, c, ld, t0 * kTile, m0, rows);
    for (int r = 0; r < rows; ++r) {
      const int64_t m = m0 + r;
      const float rs = j.row_scale ? j.row_scale[m] : 1.f;
      char* y = static_cast<char*>(j.y) + m * j.y_stride * kYSize;
      const char* res = j.residual ? static_cast<const char*>(j.residual) + m * j.residual_stride * kYSize : nullptr;
      const float* crow = c + r * ld;
      // value(i, l): the pre-activation of tile offset i, lane l.
      const auto value = [&](int i, int l) {
        const float v = crow[i * kTile + l] * rs;
        return j.bias ? v + j.bias[(t0 + i) * kTile + l] : v;
      };
      const auto vvalue = [&](int i, int l) {
        const F v = F::load_aligned(crow + i * kTile + l) * F(rs);
        return j.bias ? v + F::load_unaligned(j.bias + (t0 + i) * kTile + l) : v;
      };
      const int step = j.silu_mul ? 2 : 1;
      for (int i = 0; i < nt; i += step) {
        int64_t col, valid;
        output_columns(j, t0 + i, &col, &valid);
        if (valid >= kTile) {
          for (int l = 0; l < kTile; l += W) {
            F v = j.silu_mul ? silu(vvalue(i, l)) * vvalue(i + 1, l) : vvalue(i, l);
            if (res) v += load_as<A, Y>(res, col + l);
            store_as<A, Y>(y, col + l, v);
          }
        } else {
          for (int l = 0; l < valid; ++l) {
            float v = j.silu_mul ? silu(value(i, l)) * value(i + 1, l) : value(i, l);
            if (res) v += scalar_as<Y>(res, col + l);
            store_scalar_as<Y>(y, col + l, v);
          }
        }
      }
    }
  }

  // The plain case (no bias, residual or gate_up; whole tiles of columns): y = c * row scale.
  // Locals only in the loop: the stores through y may alias any field or captured variable,
  // which the general loop then reloads after each store (2.7% of a W8A8 M = 512 call there).
  static void scale_rows(const GemmJob& j, const float* c, int ld, int64_t col0, int64_t m0, int rows) {
    char* y = static_cast<char*>(j.y) + (m0 * j.y_stride + col0) * kYSize;
    const int64_t y_step = j.y_stride * kYSize;
    const float* row_scale = j.row_scale;
    for (int r = 0; r < rows; ++r, y += y_step, c += ld) {
      const F rs(row_scale ? row_scale[m0 + r] : 1.f);
      for (int l = 0; l < ld; l += W) store_as<A, Y>(y, l, F::load_aligned(c + l) * rs);
    }
  }

  // The first output column of packed tile t and how many of its lanes are real columns.
  // gate_up weights interleave gate and up tiles (layout.hpp); with silu_mul the pair (t, t + 1)
  // makes one output tile.
  static void output_columns(const GemmJob& j, int64_t t, int64_t* col, int64_t* valid) {
    if (!j.w->gate_up) {
      *col = t * kTile;
      *valid = j.n_out - *col;
      return;
    }
    const int64_t half = j.w->n / 2, in_half = (t / 2) * kTile;
    *col = (j.silu_mul || t % 2 == 0 ? 0 : half) + in_half;
    *valid = half - in_half;
  }
};

using EpilogueFn = void (*)(const GemmJob&, const float*, int, int64_t, int64_t, int);

template <class A>
EpilogueFn epilogue_for(DType y) {
  switch (y) {
    case DType::f32: return &Epilogue<A, DType::f32>::apply;
    case DType::bf16: return &Epilogue<A, DType::bf16>::apply;
    case DType::f16: return &Epilogue<A, DType::f16>::apply;
    default: break;  // validated: activations are float types
  }
  return nullptr;
}

// Block::template run<R, NT, S>(job, tile, m, c) computes R rows (with_block_rows: all MR, or in
// the last block of a call the even count that covers the rows left; rows past m are the
// workspace's zero padding, computed, never stored) of the activation layout's
// blocks of S rows; it adds the block's sums into c ([R][NT * 16]), or with Block::kSetsC
// writes them (its first group stores without reading): then c is not zeroed, which stores
// nothing while the previous block's y stores may still wait for their lines (zeroing c there
// took 2% of W8A8 at M = 512).
template <class A, class Block, int MR, int NT>
void run_blocks(const GemmJob& j, int64_t t_begin, int64_t t_end, int64_t m_begin, int64_t m_end) {
  static_assert(kMaxBlockRows % MR == 0, "rows per block must divide the workspace padding");
  const EpilogueFn epilogue = epilogue_for<A>(j.y_dtype);
  alignas(64) float c[MR * NT * kTile];
  for (int64_t t = t_begin; t < t_end; t += NT)
    for (int64_t m = m_begin; m < m_end; m += MR)
      with_block_rows<MR>(m_end - m, [&](auto rows) {
        constexpr int R = decltype(rows)::value;
        if constexpr (!Block::kSetsC) std::fill(c, c + R * NT * kTile, 0.f);
        Block::template run<R, NT, MR>(j, t, m, c);
        epilogue(j, c, NT, t, m, int(std::min<int64_t>(R, m_end - m)));
      });
}

}  // namespace
}  // namespace pagedinfer::detail
