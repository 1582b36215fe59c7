// pagedinfer: rotary position embedding (RoPE), in place on strided q and k, from a cos/sin
// table indexed by position; optionally fused with the append of K/V to the paged cache.
//
// Contract. For a head vector x (head_dim elements) of a token at position p, and frequencies
// f_i (i < R/2, R = rotary_dim <= head_dim), with c_i = table cos(p f_i), s_i = table sin(p f_i):
//   NeoX (rotate halves):       x'[i]       = x[i] c_i - x[i + R/2] s_i
//                               x'[i + R/2] = x[i + R/2] c_i + x[i] s_i
//   GPT-J (interleaved pairs):  x'[2i]      = x[2i] c_i - x[2i+1] s_i
//                               x'[2i+1]    = x[2i+1] c_i + x[2i] s_i
//   elements R .. head_dim-1 are left unchanged (partial rotary).
// With rotary_offset o, the rotated elements are o .. o+R-1 instead (x above is the row from o
// on), and the others are left unchanged: MLA's rotary part follows its latent part
// (head_dim 576 = 512 + 64: rotary_dim 64, rotary_offset 512).
// The table holds c and s as given (the library's own tables already include YaRN's magnitude
// factor). The kernel computes in fp32 and rounds each result once to the tensor's dtype.
//
// Tables. vLLM's cos_sin_cache layout: row p = [c_0 .. c_{R/2-1}, s_0 .. s_{R/2-1}] for
// p = 0 .. max_position-1, in fp32, bf16 or fp16. make_rope_cache builds one (fp32, computed in
// double) from theta and a scaling rule:
//   none         f_i = theta^(-2i/R)
//   linear       positions divided by factor (f_i / factor)
//   dynamic_ntk  theta' = theta * (factor * L / L0 - (factor - 1))^(R / (R - 2)) with L = the
//                table's max_position, L0 = original_max_position (Hugging Face's rule at
//                sequence length L; vLLM's when L = factor * L0); no change when L <= L0
//   yarn         per-frequency blend of f_i and f_i / factor over the correction range of
//                beta_fast / beta_slow rotations; c, s scaled by (0.1 ln(factor) + 1) * attn_factor
//   llama3       wavelengths above L0 / low_freq_factor divided by factor, below
//                L0 / high_freq_factor kept, smooth interpolation in between (Llama 3.1 / 3.2)
//
// Multimodal RoPE (Qwen2-VL / Qwen2.5-VL): positions holds three streams (temporal, height,
// width) of num_tokens each, and mrope_section = {a, b, c} with a + b + c = R/2 says which stream
// each frequency reads: i < a temporal, a <= i < a + b height, the rest width. With
// mrope_interleaved (Qwen3-VL) frequency i reads height when i % 3 == 1 and i < 3b, width when
// i % 3 == 2 and i < 3c, else temporal.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "pagedinfer/kv_cache.hpp"
#include "pagedinfer/tensor.hpp"

namespace pagedinfer {

enum class RopeStyle : int32_t { neox = 0, gptj = 1 };
enum class RopeScaling : int32_t { none = 0, linear = 1, dynamic_ntk = 2, yarn = 3, llama3 = 4 };

struct RopeConfig {
  int32_t rotary_dim = 0;              // R: even, >= 2
  int64_t max_position = 0;            // table rows: positions 0 .. max_position-1
  double theta = 10000.0;              // base of the frequencies
  RopeScaling scaling = RopeScaling::none;
  double factor = 1.0;                 // linear, dynamic_ntk, yarn, llama3: >= 1
  int64_t original_max_position = 0;   // dynamic_ntk, yarn, llama3: the pre-training context
  double beta_fast = 32.0;             // yarn
  double beta_slow = 1.0;              // yarn
  double attn_factor = 1.0;            // yarn: extra magnitude factor
  double low_freq_factor = 1.0;        // llama3
  double high_freq_factor = 4.0;       // llama3
};

// The R/2 frequencies f_i of a config, after scaling (radians per position).
PAGEDINFER_API std::vector<double> rope_inv_freq(const RopeConfig& config);
// The factor c and s are multiplied by: YaRN's (0.1 ln(factor) + 1) * attn_factor, else 1.
PAGEDINFER_API double rope_magnitude(const RopeConfig& config);

// A cos/sin table in vLLM's layout (see above); a view, not owning.
struct RopeTable {
  const void* cos_sin = nullptr;       // [max_position, rotary_dim]
  DType dtype = DType::f32;
  int64_t max_position = 0;
  int32_t rotary_dim = 0;
};

// An fp32 table built by the library.
struct RopeCache {
  std::vector<float> cos_sin;          // [max_position, rotary_dim]
  int64_t max_position = 0;
  int32_t rotary_dim = 0;
  RopeTable table() const { return {cos_sin.data(), DType::f32, max_position, rotary_dim}; }
};
PAGEDINFER_API RopeCache make_rope_cache(const RopeConfig& config);
// "none", "linear", "dynamic_ntk", "yarn", "llama3" (as configs and bindings spell them); throws
// pagedinfer::Error for other names.
PAGEDINFER_API RopeScaling parse_rope_scaling(const std::string& name);

struct RopeParams {
  RopeStyle style = RopeStyle::neox;
  int64_t num_tokens = 0;
  const int64_t* positions = nullptr;      // [num_tokens]; with mrope_section [3, num_tokens]
  const int32_t* mrope_section = nullptr;  // optional [3], sums to rotary_dim / 2
  bool mrope_interleaved = false;          // Qwen3-VL's frequency order (see above)
  RopeTable table;                         // rotary_dim = table.rotary_dim
  int32_t head_dim = 0;                    // >= rotary_offset + rotary_dim
  int32_t rotary_offset = 0;               // first rotated element (MLA: head_dim - rotary_dim)
  int32_t num_q_heads = 0;
  OutTokensView q;                         // [num_tokens, num_q_heads, head_dim]; null: no query
  int32_t num_kv_heads = 0;
  OutTokensView k;                         // [num_tokens, num_kv_heads, head_dim]; null: no key
  int num_threads = 1;
};

// Rotates q and k in place. q and k may be slices of one fused QKV buffer; they must not overlap.
PAGEDINFER_API void apply_rope(const RopeParams& p);

// Pre-attention in one pass: q rotated in place; k read from rope.k (left unchanged), rotated
// and written into the cache slot slot_mapping[i] of token i together with value (as
// append_kv: negative slot = skip, conversion to the cache's dtype). K makes one trip through
// memory. rope.num_kv_heads must equal cache.num_kv_heads and rope.head_dim cache.k.head_dim.
struct RopeAppendKvParams {
  RopeParams rope;                        // q, k, positions, table, threads
  KVCacheView cache;
  TokensView value;                       // [rope.num_tokens, cache.num_kv_heads, cache.v.head_dim]; latent: null
  const int64_t* slot_mapping = nullptr;  // [rope.num_tokens]
};
PAGEDINFER_API void apply_rope_and_append_kv(const RopeAppendKvParams& params);

// The registered kernel (kernels.hpp) that apply_rope runs for q / k of `dtype` whose rotated
// K is written as k_out_dtype (the same in place; the cache's dtype when fused), now.
PAGEDINFER_API const char* rope_kernel_name(DType dtype, DType k_out_dtype);

namespace reference {
// The oracle: double arithmetic, one rounding to the tensor's dtype; same checks.
PAGEDINFER_API void apply_rope(const RopeParams& p);
}  // namespace reference

}  // namespace pagedinfer
