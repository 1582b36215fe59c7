// quantize(): round-to-nearest quantization of a float weight into the packed layout.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.hpp"
#include "common/convert.hpp"
#include "common/scalar_convert.hpp"
#include "common/threading.hpp"
#include "quant/layout.hpp"
#include "quant/pack.hpp"

namespace pagedinfer {

namespace {


// fp16 rounding of a scale or offset; the value the kernels will use.
float to_f16(float x, uint16_t* bits) {
  *bits = detail::float_to_f16_bits(x);
  return detail::f16_bits_to_float(*bits);
}

constexpr float kMaxWeight = 65504.f;  // fp16's largest finite value

// clamp(nearbyint(v), 0, qmax) for finite v, without a libm call per weight (the baseline ISA has
// no rounding instruction): in (0, qmax), adding and subtracting 2^52 rounds to nearest even.
uint32_t clamp_q(double v, int32_t qmax) {
  if (!(v > 0.0)) return 0u;
  if (v >= double(qmax)) return uint32_t(qmax);
  return uint32_t((v + 0x1p52) - 0x1p52);
}

// Row `v` (k finite values) of packed column p: its groups' scales and zero points (or offsets)
// into s, its q (one byte each, packed k order = source order) into q.
void quantize_row(QuantizedWeight::Storage& s, int64_t p, const float* v, uint8_t* q) {
  const QuantFormat& f = s.format;
  const int32_t qmax = (1 << f.bits) - 1;
  const int64_t group = f.group_size ? f.group_size : s.k;
  for (int64_t g = 0; g * group < s.k; ++g) {
    const int64_t k0 = g * group;
    float lo = v[k0], hi = lo;
    for (int64_t i = k0; i < k0 + group; ++i) {
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
    uint16_t* scale_bits = &s.scales[size_t(s.param(p, g))];
    float scale = 0.f, offset = 0.f;  // w = scale * q + offset
    if (f.zero == QuantZero::symmetric) {
      const float amax = std::max(std::fabs(lo), std::fabs(hi));
      scale = to_f16(amax / float((1 << (f.bits - 1)) - 1), scale_bits);
      offset = -scale * float(1 << (f.bits - 1));
    } else if (f.zero == QuantZero::zero_point) {
      lo = std::min(lo, 0.f);  // zero stays exactly representable
      hi = std::max(hi, 0.f);
      scale = to_f16((hi - lo) / float(qmax), scale_bits);
      const uint32_t z = scale > 0 ? clamp_q(-double(lo) / scale, qmax) : 0u;
      s.zeros[size_t(s.param(p, g))] = uint16_t(z);
      offset = -scale * float(z);
    } else {
      scale = to_f16((hi - lo) / float(qmax), scale_bits);
      offset = to_f16(lo, &s.zeros[size_t(s.param(p, g))]);
    }
    // A zero scale means an all-zero group (or a constant one, float_offset): q then
    // dequantizes to 0 (symmetric, zero_point) or to m (float_offset).
    const uint32_t q_of_zero_scale = f.zero == QuantZero::symmetric ? uint32_t(1 << (f.bits - 1)) : 0u;
    for (int64_t i = k0; i < k0 + group; ++i)
      q[i] = uint8_t(scale > 0 ? clamp_q((double(v[i]) - double(offset)) / double(scale), qmax) : q_of_zero_scale);
  }
}

// w[i] as the 16-bit pattern of `to` (bf16 or f16): the bits themselves where the source has
// that dtype, else rounded to nearest even.
uint32_t value_bits(const void* w, DType from, DType to, size_t i) {
  if (from == to) return static_cast<const uint16_t*>(w)[i];
  const float v = detail::load_as_float(w, from, i);
  return to == DType::bf16 ? detail::float_to_bf16_bits(v) : detail::float_to_f16_bits(v);
}

bool finite_bits(uint32_t bits, DType t) {
  return t == DType::bf16 ? (bits & 0x7f80u) != 0x7f80u : (bits & 0x7c00u) != 0x7c00u;
}

// Unquantized weights: every value converted once and packed word by word (pack.hpp), tiles
// on the threads; a value that is not finite in the target dtype is reported after packing.
QuantizedWeight pack_unquantized(const void* w, DType dtype, int64_t stride, std::shared_ptr<QuantizedWeight::Storage> s,
                                 int num_threads) {
  const DType to = s->format.dtype;
  std::vector<int64_t> first_bad(size_t(s->n_packed), -1);  // per packed column, written by its tile's thread
  detail::pack_q<detail::SourceOrder::n_major>(*s, s->n_packed, s->k, num_threads, [&](int64_t p, int64_t i) {
    const int64_t row = s->row_of_packed_column(p);
    if (row < 0) return 0u;
    const uint32_t bits = value_bits(w, dtype, to, size_t(row * stride + i));
    if (!finite_bits(bits, to) && first_bad[size_t(p)] < 0) first_bad[size_t(p)] = i;
    return bits;
  });
  for (int64_t p = 0; p < s->n_packed; ++p)
    if (first_bad[size_t(p)] >= 0) {
      const int64_t row = s->row_of_packed_column(p), i = first_bad[size_t(p)];
      detail::fail("quantize", "w[", row, "][", i, "] = ", detail::load_as_float(w, dtype, size_t(row * stride + i)),
                   " is not finite as ", dtype_name(to));
    }
  return QuantizedWeight(std::move(s));
}

}  // namespace

QuantizedWeight quantize(const void* w, DType dtype, int64_t n, int64_t k, int64_t stride,
                         const QuantizeOptions& options) {
  const QuantFormat& f = options.format;
  const bool gate_up = options.gate_up;
  const int num_threads = options.num_threads;
  auto s = detail::new_storage("quantize", n, k, f, gate_up);
  PAGEDINFER_CHECK(w != nullptr, "quantize", "w is null");
  PAGEDINFER_CHECK(dtype == DType::f32 || dtype == DType::bf16 || dtype == DType::f16, "quantize", "dtype = ",
                   int(dtype), " is not a DType");
  PAGEDINFER_CHECK(stride >= k, "quantize", "stride = ", stride, " is smaller than k = ", k);
  detail::check_num_threads(num_threads, "quantize", "num_threads");
  if (!f.quantized()) return pack_unquantized(w, dtype, stride, std::move(s), num_threads);
  // Tile by tile (pack.hpp's split over the threads): each row of the tile is converted to fp32
  // once, its groups' params set, and its q packed into the tile's words. A value that is not
  // finite or beyond fp16's range is reported after (scales and offsets are fp16, so larger
  // weights would make them infinite and q NaN).
  std::vector<int64_t> first_bad(size_t(n), -1);  // per row, written by the thread of its tile
  detail::for_each_tile(*s, num_threads, [&](int64_t t) {
    std::vector<float> row_values(static_cast<size_t>(k));
    std::vector<uint8_t> q(size_t(QuantizedWeight::Storage::kTileN * s->k_packed), 0);
    int64_t lanes = 0;
    for (int64_t l = 0; l < QuantizedWeight::Storage::kTileN; ++l) {
      const int64_t p = t * QuantizedWeight::Storage::kTileN + l, row = s->row_of_packed_column(p);
      if (row < 0) continue;  // padding: q = 0, scale 0
      lanes = l + 1;
      convert(static_cast<const char*>(w) + row * stride * int64_t(dtype_size(dtype)), dtype, row_values.data(),
              DType::f32, size_t(k));
      for (int64_t i = 0; i < k; ++i)
        if (!(std::fabs(row_values[size_t(i)]) <= kMaxWeight)) {
          first_bad[size_t(row)] = i;
          break;
        }
      if (first_bad[size_t(row)] >= 0) continue;
      quantize_row(*s, p, row_values.data(), q.data() + l * s->k_packed);
    }
    if (f.bits == 4) detail::pack_tile_bits<4>(*s, t, lanes, q.data(), s->k_packed, nullptr);
    else detail::pack_tile_bits<8>(*s, t, lanes, q.data(), s->k_packed, nullptr);
  });
  for (int64_t row = 0; row < n; ++row)
    PAGEDINFER_CHECK(first_bad[size_t(row)] < 0, "quantize", "w[", row, "][", first_bad[size_t(row)],
                     "] = ", detail::load_as_float(w, dtype, size_t(row * stride + first_bad[size_t(row)])),
                     " is not finite or beyond fp16's range (|w| <= 65504: scales and offsets are fp16)");
  return QuantizedWeight(std::move(s));
}

}  // namespace pagedinfer
