// The RoPE oracle: every head row rotated in double from the table's values, rounded to the
// tensor's dtype at the end (through fp32, far below any tolerance compared against it).
#include <algorithm>
#include <vector>

#include "common/convert.hpp"
#include "rope/validate.hpp"

namespace pagedinfer::reference {

namespace {

using detail::load_as_float;

void rotate_row(const detail::RopeOperand& o, char* row_start, int32_t offset, RopeStyle style,
                const std::vector<double>& c, const std::vector<double>& s) {
  char* row = row_start + std::size_t(offset) * dtype_size(o.dtype);  // the rotated part
  const int32_t half = int32_t(c.size());
  std::vector<double> x(std::size_t(2 * half));
  for (std::size_t d = 0; d < x.size(); ++d) x[d] = load_as_float(row, o.dtype, d);
  for (int32_t i = 0; i < half; ++i) {
    // (a, b): the pair that frequency i rotates.
    const int32_t a = style == RopeStyle::neox ? i : 2 * i, b = style == RopeStyle::neox ? i + half : 2 * i + 1;
    detail::store_from_float(row, o.dtype, std::size_t(a), float(x[a] * c[i] - x[b] * s[i]));
    detail::store_from_float(row, o.dtype, std::size_t(b), float(x[b] * c[i] + x[a] * s[i]));
  }
}

// The position stream of every frequency, built the way the model descriptions state it
// (independently of the kernels' rope_stream): sections laid end to end, or (interleaved)
// temporal everywhere, then height at 1, 4, 7 .. below 3 * h and width at 2, 5, 8 .. below 3 * w.
std::vector<int> streams_of(const RopeParams& p) {
  std::vector<int> stream(std::size_t(p.table.rotary_dim / 2), 0);
  if (!p.mrope_section) return stream;
  const int32_t* sec = p.mrope_section;
  const int32_t half = int32_t(stream.size());
  if (p.mrope_interleaved) {
    for (int32_t i = 1; i < std::min(3 * sec[1], half); i += 3) stream[std::size_t(i)] = 1;
    for (int32_t i = 2; i < std::min(3 * sec[2], half); i += 3) stream[std::size_t(i)] = 2;
    return stream;
  }
  std::size_t i = 0;
  for (int s = 0; s < 3; ++s)
    for (int32_t n = 0; n < sec[s]; ++n) stream[i++] = s;
  return stream;
}

}  // namespace

void apply_rope(const RopeParams& p) {
  const detail::RopeJob j = detail::validate_rope(p, "reference::apply_rope");
  const RopeTable& tb = p.table;
  const int32_t half = tb.rotary_dim / 2;
  std::vector<double> c(static_cast<std::size_t>(half)), s(static_cast<std::size_t>(half));
  const std::vector<int> stream = streams_of(p);
  for (int64_t t = 0; t < p.num_tokens; ++t) {
    for (int32_t i = 0; i < half; ++i) {
      const int64_t pos = p.positions[stream[std::size_t(i)] * p.num_tokens + t];
      const std::size_t at = std::size_t(pos) * std::size_t(tb.rotary_dim);
      c[std::size_t(i)] = load_as_float(tb.cos_sin, tb.dtype, at + std::size_t(i));
      s[std::size_t(i)] = load_as_float(tb.cos_sin, tb.dtype, at + std::size_t(half + i));
    }
    for (const detail::RopeOperand* o : {&j.q, &j.k})
      for (int32_t h = 0; h < o->heads; ++h) rotate_row(*o, o->row(t, h), p.rotary_offset, p.style, c, s);
  }
}

}  // namespace pagedinfer::reference
