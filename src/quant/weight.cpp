// QuantizedWeight: shape bookkeeping and element access (the oracle's view of the packed form).
#include <cmath>
#include <utility>

#include "common/check.hpp"
#include "common/scalar_convert.hpp"
#include "quant/layout.hpp"

namespace pagedinfer {

using Storage = QuantizedWeight::Storage;

void Storage::derive_shape(int64_t k_packed_padded) {
  // Kernels take 1, 2 or 4 tiles at a time: columns are padded to 4 tiles (gate_up: 2 pairs).
  const int64_t rows = gate_up ? n / 2 : n;
  const int64_t align = gate_up ? 2 * kTileN : 4 * kTileN;
  const int64_t rows_packed = (rows + align - 1) / align * align;
  n_packed = gate_up ? 2 * rows_packed : rows_packed;
  if (format.group_size == 0) {
    k_packed = (k + 7) / 8 * 8;
    group = k_packed;
    groups = 1;
  } else {
    k_packed = k_packed_padded > 0 ? k_packed_padded : k;
    group = format.group_size;
    groups = k_packed / group;
  }
}

int64_t Storage::array_bytes() const {
  const int64_t params = quantized() ? groups * n_packed : 0;
  return n_packed * k_packed / kpw() * 4 + params * 2 + (format.zero == QuantZero::symmetric ? 0 : params * 2);
}

void Storage::allocate(int64_t k_packed_padded) {
  derive_shape(k_packed_padded);
  q.assign(size_t(n_packed * k_packed / kpw()), 0u);
  scales.assign(quantized() ? size_t(groups * n_packed) : 0, 0);
  zeros.assign(format.zero == QuantZero::symmetric || !quantized() ? 0 : size_t(groups * n_packed), 0);
}

void Storage::index_k_order() {
  k_position.clear();
  if (k_order.empty()) return;
  k_position.assign(size_t(k), -1);
  for (int64_t i = 0; i < k_packed; ++i)
    if (k_order[i] >= 0) k_position[k_order[i]] = int32_t(i);
}

int64_t Storage::packed_column(int64_t row) const {
  if (!gate_up) return row;
  const int64_t half = n / 2;
  const bool up = row >= half;
  const int64_t r = up ? row - half : row;
  return (2 * (r / kTileN) + (up ? 1 : 0)) * kTileN + r % kTileN;
}

int64_t Storage::row_of_packed_column(int64_t p) const {
  if (!gate_up) return p < n ? p : -1;
  const int64_t half = n / 2, pair = p / (2 * kTileN), lane = p % kTileN;
  const int64_t in_half = pair * kTileN + lane;
  if (in_half >= half) return -1;
  return (p / kTileN) % 2 == 1 ? half + in_half : in_half;
}

namespace detail {

void check_shape(const char* where, int64_t n, int64_t k) {
  PAGEDINFER_CHECK(n > 0, where, "n = ", n, " must be positive");
  PAGEDINFER_CHECK(k > 0, where, "k = ", k, " must be positive");
  // 255 * 127 * 65536 < 2^31: an int8 dot product over a whole row cannot overflow int32.
  PAGEDINFER_CHECK(k <= 65536, where, "k = ", k, " exceeds 65536");
  // Keeps every size product of the layout far inside int64 (n_packed * k_packed < 2^48).
  PAGEDINFER_CHECK(n <= (int64_t(1) << 31), where, "n = ", n, " exceeds 2^31");
}

std::shared_ptr<Storage> new_storage(const char* where, int64_t n, int64_t k, const QuantFormat& f,
                                     bool gate_up, int64_t max_array_bytes, int64_t k_packed_padded) {
  check_shape(where, n, k);
  PAGEDINFER_CHECK(f.bits == 4 || f.bits == 8 || f.bits == 16, where, "format.bits = ", f.bits,
                   " must be 4, 8 or 16 (unquantized)");
  if (!f.quantized()) {
    PAGEDINFER_CHECK(f.group_size == 0 && f.zero == QuantZero::none, where,
                     "16-bit (unquantized) weights have format.group_size 0 and format.zero none, got ",
                     f.group_size, " and ", int(f.zero), " (use QuantFormat::unquantized)");
    PAGEDINFER_CHECK(f.dtype == DType::bf16 || f.dtype == DType::f16, where, "format.dtype = ", dtype_name(f.dtype),
                     " must be bf16 or f16 for 16-bit weights");
    PAGEDINFER_CHECK(k_packed_padded == 0, where, "16-bit weights have no groups to pad");
  }
  PAGEDINFER_CHECK(f.group_size == 0 || f.group_size == 32 || f.group_size == 64 || f.group_size == 128, where,
                   "format.group_size = ", f.group_size, " must be 0 (per-channel), 32, 64 or 128");
  if (k_packed_padded > 0) {
    PAGEDINFER_CHECK(f.group_size > 0 && k_packed_padded > k && k_packed_padded <= 32 * k &&
                         k_packed_padded % f.group_size == 0,
                     where, "packed k = ", k_packed_padded, " must be a multiple of the group (", f.group_size,
                     ") in (k, 32 k] = (", k, ", ", 32 * k, "] (padded act-order groups)");
  } else {
    PAGEDINFER_CHECK(f.group_size == 0 || k % f.group_size == 0, where, "format.group_size = ", f.group_size,
                     " does not divide k = ", k);
  }
  PAGEDINFER_CHECK(!f.quantized() || f.zero == QuantZero::symmetric || f.zero == QuantZero::zero_point ||
                       f.zero == QuantZero::float_offset,
                   where, "format.zero = ", int(f.zero), " is not a QuantZero of 4- and 8-bit weights");
  PAGEDINFER_CHECK(!gate_up || n % 2 == 0, where, "gate_up needs an even n (gate rows then up rows), got ", n);
  auto s = std::make_shared<Storage>();
  s->n = n;
  s->k = k;
  s->format = f;
  s->gate_up = gate_up;
  s->derive_shape(k_packed_padded);
  PAGEDINFER_CHECK(max_array_bytes < 0 || s->array_bytes() <= max_array_bytes, where, "the header's shape (n = ", n,
                   ", k = ", k, ", ", f.bits, " bits) needs ", s->array_bytes(), " bytes of arrays but only ",
                   max_array_bytes, " follow: the data is truncated or the header corrupt");
  s->allocate(k_packed_padded);
  return s;
}

}  // namespace detail

QuantizedWeight::QuantizedWeight() = default;
QuantizedWeight::QuantizedWeight(std::shared_ptr<const Storage> s) : s_(std::move(s)) {}
QuantizedWeight::~QuantizedWeight() = default;
QuantizedWeight::QuantizedWeight(const QuantizedWeight&) = default;
QuantizedWeight& QuantizedWeight::operator=(const QuantizedWeight&) = default;

bool QuantizedWeight::empty() const { return !s_; }
const Storage& QuantizedWeight::storage() const {
  PAGEDINFER_CHECK(s_ != nullptr, "QuantizedWeight", "the weight is empty (default-constructed)");
  return *s_;
}
int64_t QuantizedWeight::n() const { return storage().n; }
int64_t QuantizedWeight::k() const { return storage().k; }
QuantFormat QuantizedWeight::format() const { return storage().format; }
int64_t QuantizedWeight::group_size() const { return storage().format.group_size ? storage().group : storage().k; }
bool QuantizedWeight::gate_up() const { return storage().gate_up; }
bool QuantizedWeight::act_order() const { return !storage().k_order.empty(); }
int64_t QuantizedWeight::bytes() const {
  const Storage& s = storage();
  return int64_t(s.q.size() * 4 + s.scales.size() * 2 + s.zeros.size() * 2);
}

int32_t QuantizedWeight::q(int64_t n, int64_t k) const {
  const Storage& s = storage();
  PAGEDINFER_CHECK(n >= 0 && n < s.n && k >= 0 && k < s.k, "QuantizedWeight::q", "(n, k) = (", n, ", ", k,
                   ") is outside [", s.n, ", ", s.k, ")");
  return int32_t(s.get_q(s.packed_column(n), s.packed_k(k)));
}

double QuantizedWeight::scale(int64_t n, int64_t k) const {
  const Storage& s = storage();
  q(n, k);  // bounds check
  if (!s.quantized()) return 1.0;
  return detail::f16_bits_to_float(s.scales[s.param(s.packed_column(n), s.packed_k(k) / s.group)]);
}

double QuantizedWeight::offset(int64_t n, int64_t k) const {
  const Storage& s = storage();
  const double sc = scale(n, k);
  const uint16_t z = s.zeros.empty() ? 0 : s.zeros[s.param(s.packed_column(n), s.packed_k(k) / s.group)];
  switch (s.format.zero) {
    case QuantZero::symmetric: return -sc * s.symmetric_zero();
    case QuantZero::zero_point: return -sc * double(z);
    case QuantZero::float_offset: return double(detail::f16_bits_to_float(z));
    case QuantZero::none: return 0.0;
  }
  return 0.0;
}

double QuantizedWeight::dequantize(int64_t n, int64_t k) const {
  const Storage& s = storage();
  if (!s.quantized()) {
    const auto bits = uint16_t(q(n, k));
    return s.format.dtype == DType::bf16 ? detail::bf16_bits_to_float(bits) : detail::f16_bits_to_float(bits);
  }
  return scale(n, k) * q(n, k) + offset(n, k);
}

double QuantizedWeight::error_magnitude(int64_t n, int64_t k) const {
  if (!storage().quantized()) return std::fabs(dequantize(n, k));
  return std::fabs(scale(n, k) * q(n, k)) + std::fabs(offset(n, k));
}

}  // namespace pagedinfer
