// The C ABI (pagedinfer/pagedinfer.h) over the C++ API: DLTensors become views (dlpack_views.hpp),
// exceptions become status codes and a per-thread message.
#include "pagedinfer/pagedinfer.h"

#include <cmath>
#include <new>
#include <string>
#include <vector>

#include "c_api/dlpack_views.hpp"
#include "c_api/guard.hpp"
#include "pagedinfer/pagedinfer.hpp"

using namespace pagedinfer;
namespace dl = pagedinfer::dlpack;
using pagedinfer::c_api::guard;
using pagedinfer::c_api::cache_of;
using pagedinfer::c_api::non_null;

struct pi_attention_plan {
  AttentionPlan plan;
};
struct pi_weight {
  QuantizedWeight w;
};

namespace pagedinfer::c_api {
std::string& last_error() {
  thread_local std::string message;
  return message;
}
}  // namespace pagedinfer::c_api

namespace {


AttentionParams attention_params(const pi_attention_plan* plan, const pi_attention_args* a) {
  non_null(plan, "plan");
  non_null(a, "args");
  AttentionParams p;
  p.q = dl::tokens(a->q, "q");
  const DLTensor& q = *a->q;
  if (q.ndim != 3) dl::fail("q", "must be [tokens, num_q_heads, head_dim_qk]");
  p.num_q_heads = int32_t(dl::size(q, 1));
  p.q_indptr = plan->plan.q_indptr.data();
  p.cache = cache_of(&a->cache);
  p.pages.num_reqs = plan->plan.problem.num_reqs;
  p.pages.kv_len = plan->plan.kv_len.data();
  int64_t n = 0;
  if (a->block_table) {
    p.pages.block_table = dl::index_array<int32_t>(a->block_table, "block_table", &n);
    if (a->block_table->ndim != 2) dl::fail("block_table", "must be [num_reqs, cols]");
    p.pages.block_table_cols = int32_t(dl::size(*a->block_table, 1));
  } else {
    p.pages.page_indptr = dl::index_array<int32_t>(a->page_indptr, "page_indptr", &n);
    if (n != p.pages.num_reqs + 1) dl::fail("page_indptr", "must have num_reqs + 1 entries");
    p.pages.page_indices = dl::index_array<int32_t>(a->page_indices, "page_indices", &n);
  }
  p.out = dl::out_tokens(a->out, "out");
  p.lse = pagedinfer::c_api::optional_lse(a->lse, a->q);
  p.scale = a->scale != 0.f ? a->scale : 1.0f / std::sqrt(float(p.cache.k.head_dim));
  p.causal = a->causal != 0;
  p.window_left = a->window_left;
  p.window_right = a->window_right;
  p.softcap = a->softcap;
  p.alibi_slopes = a->alibi_slopes;
  p.sinks = a->sinks;
  p.workspace = a->workspace;
  p.workspace_bytes = a->workspace_bytes;
  if (a->custom_mask || a->mask_indptr) {
    p.mask_indptr = dl::index_array<int64_t>(a->mask_indptr, "mask_indptr", &n);
    if (n != p.pages.num_reqs + 1) dl::fail("mask_indptr", "must have num_reqs + 1 entries");
    const DLTensor& m = dl::usable(a->custom_mask, "custom_mask");
    if (!dl::is(m, kDLUInt, 8)) dl::fail("custom_mask", "must be uint8");
    dl::contiguous(m, "custom_mask");
    if (dl::numel(m) < p.mask_indptr[n - 1]) dl::fail("custom_mask", "has fewer bytes than mask_indptr[num_reqs]");
    p.custom_mask = static_cast<const uint8_t*>(dl::data(m));
    p.mask_packed = a->mask_packed != 0;
  }
  return p;
}

RmsNormParams norm_params(const pi_rms_norm_args* a, bool fused) {
  non_null(a, "args");
  RmsNormParams p;
  p.input = dl::tokens(a->input, "input");
  p.output = dl::out_tokens(a->output, "output");
  if (fused) p.residual = dl::out_tokens(a->residual, "residual");
  const DLTensor& x = *a->input;
  p.num_tokens = dl::size(x, 0);
  p.num_heads = x.ndim == 3 ? int32_t(dl::size(x, 1)) : 1;
  p.dim = int32_t(dl::size(x, -1));
  for (const DLTensor* t : {a->output, fused ? a->residual : a->output})
    for (int d = 0; d < x.ndim; ++d)
      if (t->ndim != x.ndim || dl::size(*t, d) != dl::size(x, d)) dl::fail("output and residual", "must have input's shape");
  const DLTensor& w = dl::usable(a->weight, "weight");
  dl::dims(w, 1, 1, "weight");
  dl::contiguous(w, "weight");
  if (dl::size(w, 0) != p.dim) dl::fail("weight", "must have dim elements");
  p.weight = dl::data(w);
  p.weight_dtype = dl::dtype(w, "weight");
  p.eps = a->eps;
  p.weight_plus_one = a->weight_plus_one != 0;
  p.num_threads = a->num_threads;
  return p;
}

RopeParams rope_params(const pi_rope_args* a) {
  non_null(a, "args");
  RopeParams p;
  p.style = a->style == PI_ROPE_GPTJ ? RopeStyle::gptj : RopeStyle::neox;
  if (a->style != PI_ROPE_NEOX && a->style != PI_ROPE_GPTJ) dl::fail("style", "must be NEOX or GPTJ");
  const DLTensor& table = dl::usable(a->cos_sin_cache, "cos_sin_cache");
  dl::dims(table, 2, 2, "cos_sin_cache");
  dl::contiguous(table, "cos_sin_cache");
  p.table = {dl::data(table), dl::dtype(table, "cos_sin_cache"), dl::size(table, 0), int32_t(dl::size(table, 1))};
  for (const auto& [t, name, is_q] : {std::tuple{a->q, "q", true}, std::tuple{a->k, "k", false}}) {
    if (!t) continue;
    const OutTokensView v = dl::out_tokens(t, name);
    if (t->ndim != 3) dl::fail(name, "must be [tokens, heads, head_dim]");
    (is_q ? p.q : p.k) = v;
    (is_q ? p.num_q_heads : p.num_kv_heads) = int32_t(dl::size(*t, 1));
    p.head_dim = int32_t(dl::size(*t, 2));
    p.num_tokens = dl::size(*t, 0);
  }
  int64_t n = 0;
  p.positions = dl::index_array<int64_t>(a->positions, "positions", &n);
  p.mrope_section = a->mrope_section;
  if (n != p.num_tokens * (a->mrope_section ? 3 : 1)) dl::fail("positions", "must have one entry per token (three with mrope_section)");
  p.num_threads = a->num_threads;
  p.rotary_offset = a->rotary_offset;
  return p;
}

LinearParams linear_params(const pi_weight* w, const pi_linear_args* a) {
  non_null(w, "weight");
  non_null(a, "args");
  LinearParams p;
  p.x = dl::tokens(a->x, "x");
  p.y = dl::out_tokens(a->y, "y");
  if (a->x->ndim != 2 || a->y->ndim != 2) dl::fail("x and y", "must be 2-d");
  p.m = dl::size(*a->x, 0);
  p.k = dl::size(*a->x, 1);
  if (a->bias) {
    const DLTensor& b = dl::usable(a->bias, "bias");
    dl::contiguous(b, "bias");
    if (dl::numel(b) != w->w.n()) dl::fail("bias", "must have n elements");
    p.bias = dl::data(b);
    p.bias_dtype = dl::dtype(b, "bias");
  }
  if (a->residual) p.residual = dl::tokens(a->residual, "residual");
  if (a->activations != PI_ACTIVATIONS_FLOAT && a->activations != PI_ACTIVATIONS_INT8)
    dl::fail("activations", "must be FLOAT or INT8");
  p.activations = a->activations == PI_ACTIVATIONS_INT8 ? LinearActivations::int8_per_token : LinearActivations::float_;
  p.silu_mul = a->silu_mul != 0;
  p.num_threads = a->num_threads;
  p.workspace = a->workspace;
  p.workspace_bytes = a->workspace_bytes;
  return p;
}

const uint16_t* fp16_bits(const DLTensor* t, const char* name) {
  const DLTensor& s = dl::usable(t, name);
  if (!dl::is(s, kDLFloat, 16) && !dl::is(s, kDLInt, 16) && !dl::is(s, kDLUInt, 16)) dl::fail(name, "must be float16");
  dl::contiguous(s, name);
  return static_cast<const uint16_t*>(dl::data(s));
}

pi_status make_weight(pi_weight** out, QuantizedWeight&& w) {
  *out = new pi_weight{std::move(w)};
  return PI_OK;
}

}  // namespace

extern "C" {

const char* pi_last_error(void) { return pagedinfer::c_api::last_error().c_str(); }

pi_status pi_set_max_isa(const char* isa) { return guard([&] { set_max_isa(parse_isa(isa)); }); }
const char* pi_active_isa(void) { return isa_name(active_isa()); }
const char* pi_detected_isa(void) { return isa_name(detected_isa()); }
pi_status pi_set_disabled_features(const char* f) {
  return guard([&] { set_disabled_features(parse_features(non_null(f, "features"))); });
}
pi_status pi_force_kernel(const char* op, const char* name) {
  return guard([&] { force_kernel(non_null(op, "op"), non_null(name, "name")); });
}
const char* pi_kernel_report(void) {
  thread_local std::string report;
  report.clear();
  for (const KernelInfo& k : registered_kernels())
    report += std::string(k.op) + " " + k.name + (kernel_runs_here(k) ? " runs" : " skips") + " needs=" +
              feature_names(k.needs) + "\n";
  return report.c_str();
}

pi_status pi_append_kv(const pi_kv_cache* cache, const DLTensor* key, const DLTensor* value,
                       const DLTensor* slot_mapping, int num_threads) {
  return guard([&] {
    int64_t n = 0;
    const int64_t* slots = dl::index_array<int64_t>(slot_mapping, "slot_mapping", &n);
    const TokensView k = dl::tokens(key, "key"), v = value ? dl::tokens(value, "value") : TokensView{};
    if (dl::size(*key, 0) != n || (value && dl::size(*value, 0) != n))
      dl::fail("key and value", "must have one token per slot");
    append_kv({cache_of(cache), k, v, slots, n, num_threads});
  });
}

pi_status pi_copy_blocks(const pi_kv_cache* cache, const DLTensor* block_pairs, int num_threads) {
  return guard([&] {
    int64_t n = 0;
    const int32_t* pairs = dl::index_array<int32_t>(block_pairs, "block_pairs", &n);
    if (n % 2) dl::fail("block_pairs", "must be [n, 2]");
    copy_blocks({cache_of(cache), pairs, n / 2, num_threads});
  });
}

pi_status pi_kv_block_bytes(const pi_kv_cache* cache, size_t* bytes) {
  return guard([&] { *non_null(bytes, "bytes") = kv_block_bytes(cache_of(cache)); });
}

pi_status pi_gather_blocks(const pi_kv_cache* cache, const DLTensor* block_ids, void* dst, size_t dst_bytes,
                           int num_threads) {
  return guard([&] {
    const KVCacheView c = cache_of(cache);
    int64_t n = 0;
    const int32_t* ids = dl::index_array<int32_t>(block_ids, "block_ids", &n);
    if (dst_bytes < size_t(n) * kv_block_bytes(c)) dl::fail("dst_bytes", "is smaller than the blocks' bytes");
    gather_blocks({c, ids, n, dst, num_threads});
  });
}

pi_status pi_scatter_blocks(const pi_kv_cache* cache, const void* src, size_t src_bytes, const DLTensor* block_ids,
                            int num_threads) {
  return guard([&] {
    const KVCacheView c = cache_of(cache);
    int64_t n = 0;
    const int32_t* ids = dl::index_array<int32_t>(block_ids, "block_ids", &n);
    if (src_bytes < size_t(n) * kv_block_bytes(c)) dl::fail("src_bytes", "is smaller than the blocks' bytes");
    scatter_blocks({c, src, ids, n, num_threads});
  });
}

pi_status pi_plan_attention(const DLTensor* q_indptr, const DLTensor* kv_len, int32_t num_q_heads,
                            int32_t num_kv_heads, int32_t head_dim_qk, int32_t head_dim_v, int num_threads,
                            int32_t kv_chunk, pi_attention_plan** plan) {
  return guard([&] {
    non_null(plan, "plan");
    int64_t nq = 0, nk = 0;
    AttentionProblem p;
    p.q_indptr = dl::index_array<int32_t>(q_indptr, "q_indptr", &nq);
    p.kv_len = dl::index_array<int32_t>(kv_len, "kv_len", &nk);
    if (nq != nk + 1) dl::fail("q_indptr", "must have len(kv_len) + 1 entries");
    p.num_reqs = int32_t(nk);
    p.num_q_heads = num_q_heads;
    p.num_kv_heads = num_kv_heads;
    p.head_dim_qk = head_dim_qk;
    p.head_dim_v = head_dim_v;
    p.num_threads = num_threads;
    p.kv_chunk = kv_chunk;
    *plan = new pi_attention_plan{plan_attention(p)};
  });
}

size_t pi_plan_workspace_bytes(const pi_attention_plan* plan) { return plan ? plan->plan.workspace_bytes : 0; }
void pi_plan_destroy(pi_attention_plan* plan) { delete plan; }

void pi_attention_args_init(pi_attention_args* a) {
  if (!a) return;
  *a = pi_attention_args{};
  a->causal = 1;
  a->window_left = a->window_right = -1;
  a->mask_packed = 1;
}

pi_status pi_paged_attention(const pi_attention_plan* plan, const pi_attention_args* args) {
  return guard([&] {
    const AttentionParams p = attention_params(plan, args);
    paged_attention(plan->plan, p);
  });
}

pi_status pi_reference_paged_attention(const pi_attention_plan* plan, const pi_attention_args* args) {
  return guard([&] { reference::paged_attention(attention_params(plan, args)); });
}

pi_status pi_merge_states(const DLTensor* a, const DLTensor* lse_a, const DLTensor* b, const DLTensor* lse_b,
                          const DLTensor* out, const DLTensor* lse_out, int num_threads) {
  return guard([&] {
    MergeStatesParams p;
    p.a = dl::tokens(a, "a");
    p.b = dl::tokens(b, "b");
    p.out = dl::out_tokens(out, "out");
    if (a->ndim != 3) dl::fail("a", "must be [tokens, heads, head_dim]");
    p.num_tokens = dl::size(*a, 0);
    p.num_heads = int32_t(dl::size(*a, 1));
    p.head_dim = int32_t(dl::size(*a, 2));
    for (const DLTensor* t : {b, out})
      if (t->ndim != 3 || dl::size(*t, 0) != p.num_tokens || dl::size(*t, 1) != p.num_heads || dl::size(*t, 2) != p.head_dim)
        dl::fail("b and out", "must have a's shape");
    int64_t n = 0;
    const auto lse = [&](const DLTensor* t, const char* name) {
      const DLTensor& l = dl::usable(t, name);
      if (!dl::is(l, kDLFloat, 32)) dl::fail(name, "must be float32");
      dl::contiguous(l, name);
      n = dl::numel(l);
      if (n != p.num_tokens * p.num_heads) dl::fail(name, "must be [tokens, heads]");
      return static_cast<float*>(dl::data(l));
    };
    p.lse_a = lse(lse_a, "lse_a");
    p.lse_b = lse(lse_b, "lse_b");
    if (lse_out) p.lse_out = lse(lse_out, "lse_out");
    p.num_threads = num_threads;
    merge_states(p);
  });
}

pi_status pi_rms_norm(const pi_rms_norm_args* a) { return guard([&] { rms_norm(norm_params(a, false)); }); }
pi_status pi_fused_add_rms_norm(const pi_rms_norm_args* a) {
  return guard([&] { fused_add_rms_norm(norm_params(a, true)); });
}
pi_status pi_reference_rms_norm(const pi_rms_norm_args* a) {
  return guard([&] { reference::rms_norm(norm_params(a, false)); });
}
pi_status pi_reference_fused_add_rms_norm(const pi_rms_norm_args* a) {
  return guard([&] { reference::fused_add_rms_norm(norm_params(a, true)); });
}

pi_status pi_make_rope_cache(double theta, int32_t scaling, double factor, int64_t original_max_position,
                             const DLTensor* cos_sin_cache) {
  return guard([&] {
    const DLTensor& t = dl::usable(cos_sin_cache, "cos_sin_cache");
    if (!dl::is(t, kDLFloat, 32)) dl::fail("cos_sin_cache", "must be float32");
    dl::dims(t, 2, 2, "cos_sin_cache");
    dl::contiguous(t, "cos_sin_cache");
    if (scaling < 0 || scaling > 4) dl::fail("scaling", "must be 0 (none) to 4 (llama3)");
    RopeConfig c;
    c.rotary_dim = int32_t(dl::size(t, 1));
    c.max_position = dl::size(t, 0);
    c.theta = theta;
    c.scaling = static_cast<RopeScaling>(scaling);
    c.factor = factor;
    c.original_max_position = original_max_position;
    const RopeCache rc = make_rope_cache(c);
    std::copy(rc.cos_sin.begin(), rc.cos_sin.end(), static_cast<float*>(dl::data(t)));
  });
}

pi_status pi_apply_rope(const pi_rope_args* a) { return guard([&] { apply_rope(rope_params(a)); }); }
pi_status pi_reference_apply_rope(const pi_rope_args* a) { return guard([&] { reference::apply_rope(rope_params(a)); }); }
pi_status pi_apply_rope_and_append_kv(const pi_rope_args* a, const pi_kv_cache* cache, const DLTensor* value,
                                      const DLTensor* slot_mapping) {
  return guard([&] {
    RopeAppendKvParams p;
    p.rope = rope_params(a);
    p.cache = cache_of(cache);
    if (value) p.value = dl::tokens(value, "value");
    int64_t n = 0;
    p.slot_mapping = dl::index_array<int64_t>(slot_mapping, "slot_mapping", &n);
    if (n != p.rope.num_tokens || (value && dl::size(*value, 0) != n))
      dl::fail("slot_mapping and value", "must have one entry per token");
    apply_rope_and_append_kv(p);
  });
}

pi_status pi_quantize(const DLTensor* w, int32_t bits, int32_t group_size, pi_zero zero, int gate_up, int num_threads,
                      pi_weight** out) {
  return guard([&] {
    non_null(out, "out");
    const DLTensor& t = dl::usable(w, "w");
    dl::dims(t, 2, 2, "w");
    if (dl::size(t, 1) > 1 && dl::stride(t, 1) != 1) dl::fail("w", "must have unit stride along k");
    if (zero < PI_ZERO_SYMMETRIC || zero > PI_ZERO_NONE) dl::fail("zero", "must be a pi_zero");
    // 16 bits keep w's own bf16 / fp16 values (quantize() checks the rest of the format).
    QuantizeOptions o(QuantFormat{bits, group_size, static_cast<QuantZero>(zero), dl::dtype(t, "w")});
    o.gate_up = gate_up != 0;
    o.num_threads = num_threads;
    make_weight(out, quantize(dl::data(t), dl::dtype(t, "w"), dl::size(t, 0), dl::size(t, 1), dl::size(t, 0) > 1 ? dl::stride(t, 0) : dl::size(t, 1), o));
  });
}

pi_status pi_import_awq(const DLTensor* qweight, const DLTensor* qzeros, const DLTensor* scales, int32_t group_size,
                        pi_weight** out) {
  return guard([&] {
    non_null(out, "out");
    int64_t nq = 0, nz = 0;
    const int32_t* q = dl::index_array<int32_t>(qweight, "qweight", &nq);
    const int32_t* z = dl::index_array<int32_t>(qzeros, "qzeros", &nz);
    if (qweight->ndim != 2) dl::fail("qweight", "must be [k, n / 8]");
    const int64_t k = dl::size(*qweight, 0), n = dl::size(*qweight, 1) * 8;
    if (group_size > 0 && (k % group_size || nz != k / group_size * n / 8)) dl::fail("qzeros", "must be [k / group, n / 8]");
    const uint16_t* s = fp16_bits(scales, "scales");
    if (group_size > 0 && dl::numel(*scales) != k / group_size * n) dl::fail("scales", "must be [k / group, n]");
    make_weight(out, import_awq(q, z, s, n, k, group_size));
  });
}

pi_status pi_import_gptq(const DLTensor* qweight, const DLTensor* qzeros, const DLTensor* scales, const DLTensor* g_idx,
                         int32_t bits, int32_t group_size, pi_weight** out) {
  return guard([&] {
    non_null(out, "out");
    int64_t nq = 0, nz = 0, ng = 0;
    const int32_t* q = dl::index_array<int32_t>(qweight, "qweight", &nq);
    const int32_t* z = dl::index_array<int32_t>(qzeros, "qzeros", &nz);
    if (qweight->ndim != 2 || (bits != 4 && bits != 8)) dl::fail("qweight", "must be [k * bits / 32, n] with bits 4 or 8");
    const int64_t n = dl::size(*qweight, 1), k = dl::size(*qweight, 0) * 32 / bits;
    const int32_t* g = g_idx ? dl::index_array<int32_t>(g_idx, "g_idx", &ng) : nullptr;
    if (g && ng != k) dl::fail("g_idx", "must have k entries");
    if (group_size > 0 && (k % group_size || nz != k / group_size * n * bits / 32)) dl::fail("qzeros", "must be [groups, n * bits / 32]");
    const uint16_t* s = fp16_bits(scales, "scales");
    if (group_size > 0 && dl::numel(*scales) != k / group_size * n) dl::fail("scales", "must be [groups, n]");
    make_weight(out, import_gptq(q, z, s, g, n, k, bits, group_size));
  });
}

pi_status pi_import_q4_0(const void* blocks, size_t bytes, int64_t n, int64_t k, pi_weight** out) {
  return guard([&] {
    non_null(out, "out");
    if (n < 0 || k < 0 || bytes < size_t(n) * size_t(k / 32) * 18) dl::fail("bytes", "is smaller than n * k / 32 Q4_0 blocks");
    make_weight(out, import_q4_0(non_null(blocks, "blocks"), n, k));
  });
}

pi_status pi_import_q8_0(const void* blocks, size_t bytes, int64_t n, int64_t k, pi_weight** out) {
  return guard([&] {
    non_null(out, "out");
    if (n < 0 || k < 0 || bytes < size_t(n) * size_t(k / 32) * 34) dl::fail("bytes", "is smaller than n * k / 32 Q8_0 blocks");
    make_weight(out, import_q8_0(non_null(blocks, "blocks"), n, k));
  });
}

pi_status pi_save_weight(const pi_weight* w, void* buf, size_t capacity, size_t* size) {
  return guard([&] {
    const std::vector<uint8_t> bytes = save_weight(non_null(w, "weight")->w);
    *non_null(size, "size") = bytes.size();
    if (!buf) return;
    if (capacity < bytes.size()) dl::fail("capacity", "is smaller than the serialized weight");
    std::copy(bytes.begin(), bytes.end(), static_cast<uint8_t*>(buf));
  });
}

pi_status pi_load_weight(const void* data, size_t size, pi_weight** out) {
  return guard([&] { make_weight(non_null(out, "out"), load_weight(static_cast<const uint8_t*>(data), size)); });
}

pi_status pi_weight_shape(const pi_weight* w, int64_t* n, int64_t* k) {
  return guard([&] {
    *non_null(n, "n") = non_null(w, "weight")->w.n();
    *non_null(k, "k") = w->w.k();
  });
}

void pi_weight_destroy(pi_weight* w) { delete w; }

pi_status pi_linear_workspace_size(const pi_weight* w, const pi_linear_args* args, size_t* bytes) {
  return guard([&] {
    const LinearParams p = linear_params(w, args);
    *non_null(bytes, "bytes") = linear_workspace_size(w->w, p);
  });
}

pi_status pi_linear(const pi_weight* w, const pi_linear_args* args) {
  return guard([&] {
    const LinearParams p = linear_params(w, args);
    linear(w->w, p);
  });
}

pi_status pi_reference_linear(const pi_weight* w, const pi_linear_args* args) {
  return guard([&] {
    const LinearParams p = linear_params(w, args);
    reference::linear(w->w, p);
  });
}


}  // extern "C"
