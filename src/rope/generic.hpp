// RoPE kernel body, written once over xsimd::batch<float, A>; included by each ISA TU of
// src/rope/ after its common/simd/<isa>.hpp. Math and rounding as in rope.hpp.
#pragma once
#include "common/convert.hpp"
#include "common/dtype_dispatch.hpp"
#include "common/simd/load.hpp"
#include "convert/generic.hpp"
#include "kv_cache/paged.hpp"
#include "rope/kernel.hpp"

namespace pagedinfer::detail {
namespace {

template <class A, DType X, DType C>
struct RopeKernelBody {
  using B = xsimd::batch<float, A>;
  static constexpr int32_t W = int32_t(B::size);

  // NeoX: halves [0, h) and [h, 2h) rotate against each other.
  template <DType S, DType D>
  static void neox(const void* src, void* dst, const float* c, const float* s, int32_t half) {
    int32_t i = 0;
    for (; i + W <= half; i += W) {
      const B x1 = load_as<A, S>(src, i), x2 = load_as<A, S>(src, half + i);
      const B cv = B::load_unaligned(c + i), sv = B::load_unaligned(s + i);
      store_as<A, D>(dst, i, xsimd::fms(x1, cv, x2 * sv));
      store_as<A, D>(dst, half + i, xsimd::fma(x2, cv, x1 * sv));
    }
    for (; i < half; ++i) {
      const float x1 = scalar_as<S>(src, i), x2 = scalar_as<S>(src, half + i);
      store_scalar_as<D>(dst, i, x1 * c[i] - x2 * s[i]);
      store_scalar_as<D>(dst, half + i, x2 * c[i] + x1 * s[i]);
    }
  }

  // GPT-J: pairs (2i, 2i+1). c2/s2 hold each angle twice, s2 with the sign of its lane:
  // x' = x * c2 + swap_pairs(x) * s2, s2 = [-s0, s0, -s1, s1, ..].
  template <DType S, DType D>
  static void gptj(const void* src, void* dst, const float* c2, const float* s2, int32_t rotary) {
    int32_t i = 0;
    for (; i + W <= rotary; i += W) {
      const B x = load_as<A, S>(src, i);
      const B sw = SimdIsa<A>::swap_pairs(x);
      store_as<A, D>(dst, i, xsimd::fma(x, B::load_unaligned(c2 + i), sw * B::load_unaligned(s2 + i)));
    }
    for (; i < rotary; i += 2) {
      const float x0 = scalar_as<S>(src, i), x1 = scalar_as<S>(src, i + 1);
      store_scalar_as<D>(dst, i, x0 * c2[i] + x1 * s2[i]);
      store_scalar_as<D>(dst, i + 1, x1 * c2[i + 1] + x0 * s2[i + 1]);
    }
  }

  // The unrotated tail [from, to) of a row, converted (fused append only).
  static void copy_tail(const void* src, void* dst, int32_t from, int32_t to) {
    convert_values<A, X, C>(static_cast<const char*>(src) + std::size_t(from) * dtype_size(X),
                            static_cast<char*>(dst) + std::size_t(from) * dtype_size(C), std::size_t(to - from));
  }

  // Rotates elements [rotary_offset, rotary_offset + rotary_dim) of a row.
  template <DType D>
  static void rotate(const RopeJob& j, const void* src_row, void* dst_row, const float* c, const float* s) {
    const void* src = static_cast<const char*>(src_row) + std::size_t(j.rotary_offset) * dtype_size(X);
    void* dst = static_cast<char*>(dst_row) + std::size_t(j.rotary_offset) * dtype_size(D);
    if (j.params->style == RopeStyle::neox) neox<X, D>(src, dst, c, s, j.rotary_dim / 2);
    else gptj<X, D>(src, dst, c, s, j.rotary_dim);
  }

  // Token t + kAhead's q and k rows, fetched while token t is rotated: only the rows the kernel
  // touches (a fused QKV buffer's v rows are skipped), further ahead than the hardware prefetchers
  // run on one stream per core.
  static constexpr int64_t kAhead = 2;
  static const char* value_row(const RopeJob& j, int64_t t, int32_t h) {
    return static_cast<const char*>(j.value.data) +
           (t * j.value.stride_token + h * j.value.stride_head) * int64_t(dtype_size(j.value.dtype));
  }

  static void run(const RopeJob& j, int64_t t0, int64_t t1) {
    const int32_t half = j.rotary_dim / 2;
    const int64_t row_bytes = int64_t(j.rotary_dim) * int64_t(dtype_size(X));
    const int64_t rotated_from = int64_t(j.rotary_offset) * int64_t(dtype_size(X));
    alignas(64) float cos[kMaxRotaryDim], sin[kMaxRotaryDim];
    alignas(64) float krow[kMaxHeadDim], vrow[kMaxHeadDim];  // rows bound for a quantized cache (C = f32)
    const bool latent = j.cache && v_in_k(*j.cache);  // K carries V: no value rows
    const ConvertKernel convert_value = j.cache && !latent ? select_convert_kernel<A>(j.value.dtype, C) : nullptr;
    for (int64_t t = t0; t < t1; ++t) {
      rope_token_angles(j, t, cos, sin);
      if (j.params->style == RopeStyle::gptj) {
        for (int32_t i = half - 1; i >= 0; --i) {  // expand in place, from the end
          cos[2 * i] = cos[2 * i + 1] = cos[i];
          const float si = sin[i];
          sin[2 * i] = -si;
          sin[2 * i + 1] = si;
        }
      }
      const bool ahead = t + kAhead < t1;
      for (int32_t h = 0; h < j.q.heads; ++h) {
        if (ahead) prefetch_bytes(j.q.row(t + kAhead, h) + rotated_from, row_bytes);
        char* row = j.q.row(t, h);
        rotate<X>(j, row, row, cos, sin);
      }
      if (!j.cache) {
        for (int32_t h = 0; h < j.k.heads; ++h) {
          if (ahead) prefetch_bytes(j.k.row(t + kAhead, h) + rotated_from, row_bytes);
          char* row = j.k.row(t, h);
          rotate<X>(j, row, row, cos, sin);
        }
        continue;
      }
      const int64_t slot = j.slot_mapping[t];
      if (slot < 0) continue;
      const KVCacheView& c = *j.cache;
      const int64_t page = slot / c.page_size, off = slot % c.page_size;
      const int64_t es = int64_t(dtype_size(c.dtype));
      for (int32_t h = 0; h < j.k.heads; ++h) {
        if (ahead) {
          prefetch_bytes(j.k.row(t + kAhead, h), int64_t(j.head_dim) * int64_t(dtype_size(X)));
          if (!latent)
            prefetch_bytes(value_row(j, t + kAhead, h), int64_t(c.v.head_dim) * int64_t(dtype_size(j.value.dtype)));
        }
        const char* src = j.k.row(t, h);
        char* kdst = static_cast<char*>(c.k.data) + row_offset(c.k, page, off, h) * es;
        char* vdst = latent ? nullptr : static_cast<char*>(c.v.data) + row_offset(c.v, page, off, h) * es;
        if (j.quantize) kdst = reinterpret_cast<char*>(krow), vdst = reinterpret_cast<char*>(vrow);
        rotate<C>(j, src, kdst, cos, sin);
        copy_tail(src, kdst, 0, j.rotary_offset);
        copy_tail(src, kdst, j.rotary_offset + j.rotary_dim, j.head_dim);
        if (!latent) convert_value(value_row(j, t, h), vdst, std::size_t(c.v.head_dim));
        if (!j.quantize) continue;
        store_quantized_row(c, c.k, c.k_scale, j.quantize, page, off, h, krow);
        if (!latent) store_quantized_row(c, c.v, c.v_scale, j.quantize, page, off, h, vrow);
      }
    }
  }
};

template <class A>
RopeKernel select_rope_kernel(DType x, DType k_out) {
  return with_dtypes(x, k_out, [](auto xt, auto ct) -> RopeKernel {
    return &RopeKernelBody<A, decltype(xt)::value, decltype(ct)::value>::run;
  });
}

}  // namespace
}  // namespace pagedinfer::detail
