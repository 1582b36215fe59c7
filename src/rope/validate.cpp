#include "rope/validate.hpp"

#include "common/check.hpp"
#include "common/tensor_check.hpp"

namespace pagedinfer::detail {

namespace {

void validate_table(const RopeTable& t, int32_t head_dim, const char* where) {
  PAGEDINFER_CHECK(is_float_dtype(t.dtype), where, "table.dtype must be f32, bf16 or f16");
  PAGEDINFER_CHECK(t.rotary_dim >= 2 && t.rotary_dim % 2 == 0, where, "table.rotary_dim = ", t.rotary_dim,
                   " must be even and >= 2");
  PAGEDINFER_CHECK(t.rotary_dim <= head_dim, where, "table.rotary_dim = ", t.rotary_dim,
                   " must be <= head_dim = ", head_dim);
  PAGEDINFER_CHECK(t.max_position >= 1, where, "table.max_position = ", t.max_position, " must be >= 1");
  PAGEDINFER_CHECK(t.cos_sin != nullptr, where, "table.cos_sin must not be null");
  PAGEDINFER_CHECK(aligned_to(t.cos_sin, t.dtype), where, "table.cos_sin must be aligned to ", dtype_size(t.dtype),
                   " bytes");
}

void validate_positions(const RopeParams& p, const char* where) {
  if (p.num_tokens == 0) return;
  PAGEDINFER_CHECK(p.positions != nullptr, where, "positions must not be null");
  const int streams = p.mrope_section ? 3 : 1;
  for (int s = 0; s < streams; ++s)
    for (int64_t i = 0; i < p.num_tokens; ++i) {
      const int64_t pos = p.positions[s * p.num_tokens + i];
      PAGEDINFER_CHECK(pos >= 0 && pos < p.table.max_position, where, "positions[", s * p.num_tokens + i, "] = ", pos,
                       " is outside the table's positions [0, ", p.table.max_position, ")");
    }
}

RopeOperand operand(const OutTokensView& v, int32_t heads, const RopeParams& p, const char* where, const char* name) {
  PAGEDINFER_CHECK(heads >= 0, where, "num_", name, "_heads = ", heads, " must be >= 0");
  RopeOperand o;
  if (heads == 0) return o;
  validate_tokens(v.data, v.dtype, v.stride_token, v.stride_head, p.num_tokens, heads, p.head_dim, where, name);
  o.data = v.data;
  o.dtype = v.dtype;
  o.stride_token = v.stride_token;
  o.stride_head = v.stride_head;
  o.heads = heads;
  return o;
}

}  // namespace

RopeJob validate_rope(const RopeParams& p, const char* where) {
  PAGEDINFER_CHECK(p.style == RopeStyle::neox || p.style == RopeStyle::gptj, where, "style = ", int(p.style),
                   " is not a RopeStyle value");
  PAGEDINFER_CHECK(p.num_tokens >= 0, where, "num_tokens = ", p.num_tokens, " must be >= 0");
  detail::check_num_threads(p.num_threads, where, "num_threads");
  PAGEDINFER_CHECK(p.head_dim >= 2 && p.head_dim <= kMaxRotaryDim, where, "head_dim = ", p.head_dim,
                   " must be in [2, ", kMaxRotaryDim, "]");
  validate_table(p.table, p.head_dim, where);
  if (p.mrope_section) {
    const int32_t* s = p.mrope_section;
    const int64_t sum = int64_t(s[0]) + s[1] + s[2];  // int32 would wrap for sections near INT32_MAX
    PAGEDINFER_CHECK(s[0] >= 0 && s[1] >= 0 && s[2] >= 0 && sum == p.table.rotary_dim / 2, where,
                     "mrope_section = {", s[0], ", ", s[1], ", ", s[2], "} must be >= 0 and sum to rotary_dim / 2 = ",
                     p.table.rotary_dim / 2);
  }
  PAGEDINFER_CHECK(!p.mrope_interleaved || p.mrope_section, where, "mrope_interleaved needs mrope_section");
  validate_positions(p, where);
  RopeJob j;
  j.params = &p;
  PAGEDINFER_CHECK(p.rotary_offset >= 0 && p.rotary_offset <= p.head_dim - p.table.rotary_dim, where,
                   "rotary_offset = ", p.rotary_offset, " must be in [0, head_dim - rotary_dim] = [0, ",
                   p.head_dim - p.table.rotary_dim, "]");
  j.rotary_dim = p.table.rotary_dim;
  j.rotary_offset = p.rotary_offset;
  j.table_to_f32 = convert_kernel(p.table.dtype, DType::f32);
  j.head_dim = p.head_dim;
  j.q = operand(p.q, p.num_q_heads, p, where, "q");
  j.k = operand(p.k, p.num_kv_heads, p, where, "k");
  if (p.num_q_heads && p.num_kv_heads)
    PAGEDINFER_CHECK(p.q.dtype == p.k.dtype, where, "k.dtype (", dtype_name(p.k.dtype), ") must equal q.dtype (",
                     dtype_name(p.q.dtype), ")");
  return j;
}

}  // namespace pagedinfer::detail
