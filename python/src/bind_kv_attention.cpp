// KV cache views and operations, attention plans, paged_attention and merge_states.
#include <pybind11/stl.h>

#include <array>
#include <cmath>

#include "bindings.hpp"
#include "c_api/dlpack_views.hpp"

namespace pagedinfer::python {

template <class T>
std::vector<T> values_of(py::handle obj, const char* name, DLDataTypeCode code, int bits, const char* what) {
  if (!py::hasattr(obj, "__dlpack__")) return obj.cast<std::vector<T>>();
  Borrowed b(obj, name);
  b.dims(1).dtype_is(code, bits, what);
  std::vector<T> out(size_t(b.size(0)));
  for (int64_t i = 0; i < b.size(0); ++i) out[size_t(i)] = static_cast<const T*>(b.data())[i * b.stride(0)];
  return out;
}

std::vector<int32_t> int32_values(py::handle obj, const char* name) {
  return values_of<int32_t>(obj, name, kDLInt, 32, "int32");
}
std::vector<int64_t> int64_values(py::handle obj, const char* name) {
  return values_of<int64_t>(obj, name, kDLInt, 64, "int64");
}

namespace {

// vLLM's kv_cache_dtype names ("fp8" is e4m3), "int8", and "auto": the tensors' float dtype.
DType kv_cache_dtype(const std::string& name) {
  if (name == "auto") return DType::f32;
  if (name == "fp8" || name == "fp8_e4m3") return DType::f8_e4m3;
  if (name == "fp8_e5m2") return DType::f8_e5m2;
  if (name == "int8") return DType::i8;
  throw Error("pagedinfer: kv_cache_dtype '" + name + "' must be 'auto', 'fp8', 'fp8_e4m3', 'fp8_e5m2' or 'int8'");
}

KVCache make_cache(py::object k, py::object v, const std::string& layout, const std::string& kv_dtype, float k_scale,
                   float v_scale, py::object k_scales, py::object v_scales) {
  if (layout != "nhd" && layout != "hnd") throw Error("pagedinfer: layout '" + layout + "' must be 'nhd' or 'hnd'");
  Borrowed bk(k, "k_cache"), bv(v, "v_cache");
  std::unique_ptr<Borrowed> ks, vs;
  if (given(k_scales)) ks = std::make_unique<Borrowed>(k_scales, "k_scales");
  if (given(v_scales)) vs = std::make_unique<Borrowed>(v_scales, "v_scales");
  dlpack::CacheQuant q;
  q.dtype = kv_cache_dtype(kv_dtype);
  q.k_scale = k_scale;
  q.v_scale = v_scale;
  q.k_scales = ks ? &ks->t() : nullptr;
  q.v_scales = vs ? &vs->t() : nullptr;
  return KVCache{k, v, dlpack::cache(&bk.t(), &bv.t(), layout == "hnd", q), k_scales, v_scales};
}

}  // namespace

void bind_kv_cache(py::module_& m) {
  py::class_<KVCache>(m, "KVCache", R"(A paged KV cache viewed in place (no copy) over two pool tensors, kept alive.
layout 'nhd': k, v [num_pages, page_size, num_kv_heads, head_dim]; 'hnd': [num_pages, num_kv_heads, page_size, head_dim].
Any strides (a combined [pages, 2, ...] tensor's kv[:, 0] and kv[:, 1] work); unit stride along head_dim.
Quantized caches (uint8 / int8 pools): kv_cache_dtype 'fp8' / 'fp8_e4m3' / 'fp8_e5m2' with k_scale, v_scale
(element = stored value * scale, vLLM's convention), or 'int8' with k_scales, v_scales: float32
[num_pages, page_size, num_kv_heads] ('nhd') or [num_pages, num_kv_heads, page_size] ('hnd'), one per row.)")
      .def(py::init(&make_cache), py::arg("k_cache"), py::arg("v_cache"), py::arg("layout") = "nhd",
           py::arg("kv_cache_dtype") = "auto", py::arg("k_scale") = 1.f, py::arg("v_scale") = 1.f,
           py::arg("k_scales") = py::none(), py::arg("v_scales") = py::none())
      .def_property_readonly("kv_cache_dtype", [](const KVCache& c) { return std::string(dtype_name(c.view.dtype)); })
      .def_property_readonly("num_pages", [](const KVCache& c) { return c.view.num_pages; })
      .def_property_readonly("page_size", [](const KVCache& c) { return c.view.page_size; })
      .def_property_readonly("num_kv_heads", [](const KVCache& c) { return c.view.num_kv_heads; })
      .def_property_readonly("head_dim_qk", [](const KVCache& c) { return c.view.k.head_dim; })
      .def_property_readonly("head_dim_v", [](const KVCache& c) { return c.view.v.head_dim; })
      .def_property_readonly("block_bytes", [](const KVCache& c) { return kv_block_bytes(c.view); })
      .def_readonly("k", &KVCache::k)
      .def_readonly("v", &KVCache::v)
      .def_readonly("k_scales", &KVCache::k_scales)
      .def_readonly("v_scales", &KVCache::v_scales);

  m.def(
      "append_kv",
      [](const KVCache& c, py::handle key, py::handle value, py::handle slot_mapping, int num_threads) {
        Borrowed k(key, "key");
        std::unique_ptr<Borrowed> v;  // None for a latent cache (V inside K)
        if (given(value)) v = std::make_unique<Borrowed>(value, "value");
        const std::vector<int64_t> slots = int64_values(slot_mapping, "slot_mapping");
        AppendKvParams p{c.view, k.tokens(), v ? v->tokens() : TokensView{}, slots.data(), int64_t(slots.size()), num_threads};
        if (k.size(0) != p.num_tokens) throw Error("pagedinfer: key has " + std::to_string(k.size(0)) + " tokens, slot_mapping " + std::to_string(p.num_tokens));
        py::gil_scoped_release nogil;
        append_kv(p);
      },
      py::arg("cache"), py::arg("key"), py::arg("value"), py::arg("slot_mapping"), py::arg("num_threads") = 1,
      "key [tokens, kv_heads, head_dim_qk], value [tokens, kv_heads, head_dim_v] (None: a latent cache) into\n"
      "slot_mapping (int64, -1 skips).");
  m.def(
      "copy_blocks",
      [](const KVCache& c, py::handle pairs, int num_threads) {
        std::vector<int32_t> flat;
        if (py::hasattr(pairs, "__dlpack__")) {
          Borrowed b(pairs, "block_pairs");
          b.dims(2).dtype_is(kDLInt, 32, "int32").contiguous();
          if (b.size(1) != 2) throw Error("pagedinfer: block_pairs must be [n, 2]");
          flat.assign(static_cast<const int32_t*>(b.data()), static_cast<const int32_t*>(b.data()) + b.numel());
        } else {
          for (const auto& pair : pairs.cast<std::vector<std::array<int32_t, 2>>>()) flat.insert(flat.end(), pair.begin(), pair.end());
        }
        CopyBlocksParams p{c.view, flat.data(), int64_t(flat.size() / 2), num_threads};
        py::gil_scoped_release nogil;
        copy_blocks(p);
      },
      py::arg("cache"), py::arg("block_pairs"), py::arg("num_threads") = 1, "block_pairs [n, 2]: (src, dst) pages.");
  m.def(
      "gather_blocks",
      [](const KVCache& c, py::handle block_ids, py::object out, int num_threads) {
        const std::vector<int32_t> ids = int32_values(block_ids, "block_ids");
        const std::size_t bytes = ids.size() * kv_block_bytes(c.view);
        if (out.is_none()) out = empty_with({int64_t(bytes)}, "uint8");
        Borrowed o(out, "out");
        if (std::size_t(o.numel()) * (o.t().dtype.bits / 8) < bytes) throw Error("pagedinfer: out is smaller than the blocks' bytes");
        o.contiguous();
        GatherBlocksParams p{c.view, ids.data(), int64_t(ids.size()), o.data(), num_threads};
        {
          py::gil_scoped_release nogil;
          gather_blocks(p);
        }
        return out;
      },
      py::arg("cache"), py::arg("block_ids"), py::arg("out") = py::none(), py::arg("num_threads") = 1,
      "The pages, flat (K then V per page, any layout): a uint8 tensor of len(block_ids) * cache.block_bytes.");
  m.def(
      "scatter_blocks",
      [](const KVCache& c, py::handle src, py::handle block_ids, int num_threads) {
        const std::vector<int32_t> ids = int32_values(block_ids, "block_ids");
        Borrowed s(src, "src");
        s.contiguous();
        if (std::size_t(s.numel()) * (s.t().dtype.bits / 8) < ids.size() * kv_block_bytes(c.view))
          throw Error("pagedinfer: src is smaller than the blocks' bytes");
        ScatterBlocksParams p{c.view, s.data(), ids.data(), int64_t(ids.size()), num_threads};
        py::gil_scoped_release nogil;
        scatter_blocks(p);
      },
      py::arg("cache"), py::arg("src"), py::arg("block_ids"), py::arg("num_threads") = 1);
  const auto views = [](const std::vector<KVCache>& caches) {
    std::vector<KVCacheView> v;
    for (const KVCache& c : caches) v.push_back(c.view);
    if (v.empty()) throw Error("pagedinfer: caches is empty (one KVCache per layer)");
    return v;
  };
  m.def(
      "export_kv",
      [views](const std::vector<KVCache>& caches, py::handle block_ids, int64_t num_tokens, int num_threads) {
        const std::vector<KVCacheView> v = views(caches);
        const std::vector<int32_t> ids = int32_values(block_ids, "block_ids");
        const std::size_t bytes = kv_transfer_bytes(v[0], int32_t(v.size()), num_tokens);
        if (ids.size() * std::size_t(v[0].page_size) < std::size_t(num_tokens))
          throw Error("pagedinfer: block_ids holds fewer pages than num_tokens needs");
        py::object out = empty_with({int64_t(bytes)}, "uint8");
        Borrowed o(out, "out");
        ExportKVParams p{v.data(), int32_t(v.size()), ids.data(), num_tokens, o.data(), bytes, num_threads};
        {
          py::gil_scoped_release nogil;
          export_kv(p);
        }
        return out;
      },
      py::arg("caches"), py::arg("block_ids"), py::arg("num_tokens"), py::arg("num_threads") = 1,
      "One sequence's KV of every layer (caches: one KVCache per layer) as a checked transfer: a uint8 tensor.");
  m.def(
      "import_kv",
      [views](const std::vector<KVCache>& caches, py::handle data, py::handle block_ids, int num_threads) {
        const std::vector<KVCacheView> v = views(caches);
        const std::vector<int32_t> ids = int32_values(block_ids, "block_ids");
        Borrowed d(data, "data");
        d.contiguous();
        ImportKVParams p{v.data(),         int32_t(v.size()), d.data(), std::size_t(d.numel()) * (d.t().dtype.bits / 8),
                         ids.data(),       int64_t(ids.size()), num_threads};
        KVTransferInfo info;
        {
          py::gil_scoped_release nogil;
          info = import_kv(p);
        }
        return info.num_tokens;
      },
      py::arg("caches"), py::arg("data"), py::arg("block_ids"), py::arg("num_threads") = 1,
      "Validates a transfer (header, length, checksum, shapes, ids), then writes its pages; returns its token count.");
}

namespace {

struct Plan {
  AttentionPlan plan;
};

// A custom mask borrowed for one call: packed bits (uint8) or one element per byte (bool, or
// uint8 with mask_packed=False), and its byte offsets per request as int64.
struct CustomMask {
  std::unique_ptr<Borrowed> bytes;
  std::vector<int64_t> indptr;
  bool packed = true;

  CustomMask(py::handle mask, py::handle mask_indptr, py::handle mask_packed) {
    if (!given(mask)) {
      if (given(mask_indptr)) throw Error("pagedinfer: mask_indptr given without custom_mask");
      return;
    }
    if (!given(mask_indptr)) throw Error("pagedinfer: custom_mask needs mask_indptr (byte offsets per request)");
    py::object m = py::reinterpret_borrow<py::object>(mask);
    const bool is_bool = py::hasattr(m, "dtype") && py::str(m.attr("dtype")).cast<std::string>().find("bool") != std::string::npos;
    if (is_bool) {  // DLPack of this era has no bool: the same bytes as uint8
      const bool torch = py::str(py::type::of(m).attr("__module__")).cast<std::string>().rfind("torch", 0) == 0;
      m = torch ? m.attr("view")(py::module_::import("torch").attr("uint8")) : m.attr("view")("uint8");
    }
    packed = given(mask_packed) ? mask_packed.cast<bool>() : !is_bool;
    if (is_bool && packed) throw Error("pagedinfer: a bool custom_mask is dense: mask_packed must be False");
    bytes = std::make_unique<Borrowed>(m, "custom_mask");
    bytes->dtype_is(kDLUInt, 8, "uint8 (packed bits) or bool (dense)").contiguous();
    if (py::hasattr(mask_indptr, "__dlpack__") && Borrowed(mask_indptr, "mask_indptr").is(kDLInt, 32)) {
      const std::vector<int32_t> v = int32_values(mask_indptr, "mask_indptr");
      indptr.assign(v.begin(), v.end());
    } else {
      indptr = int64_values(mask_indptr, "mask_indptr");
    }
    if (indptr.empty() || indptr.back() > bytes->numel())
      throw Error("pagedinfer: custom_mask has " + std::to_string(bytes->numel()) + " bytes, fewer than mask_indptr[-1]");
  }

  void set(AttentionParams& p, std::size_t num_reqs) const {
    if (!bytes) return;
    if (indptr.size() != num_reqs + 1) throw Error("pagedinfer: mask_indptr must have num_reqs + 1 entries");
    p.custom_mask = static_cast<const uint8_t*>(bytes->data());
    p.mask_indptr = indptr.data();
    p.mask_packed = packed;
  }
};

// Builds the params and runs `run` (the kernel or the reference) with the GIL released.
template <class Run>
py::object attention_call(const Plan& pl, py::handle q_obj, const KVCache& c, py::handle block_table,
                          py::handle page_indptr, py::handle page_indices, py::object out, py::object lse,
                          bool return_lse, py::object scale, bool causal, int32_t window_left, int32_t window_right,
                          float softcap, py::handle alibi_slopes, py::handle sinks, const CustomMask& mask,
                          Run&& run) {
  const AttentionPlan& plan = pl.plan;
  Borrowed q(q_obj, "q");
  q.dims(3);
  const int64_t tokens = q.size(0);
  const int32_t heads = int32_t(q.size(1));
  if (out.is_none()) out = empty_like_dtype({tokens, heads, c.view.v.head_dim}, q.dtype());
  if (return_lse && lse.is_none()) lse = empty_with({tokens, heads}, "float32");
  Borrowed o(out, "out");
  AttentionParams p;
  p.q = q.tokens();
  p.q_indptr = plan.q_indptr.data();
  p.num_q_heads = heads;
  p.cache = c.view;
  p.pages.num_reqs = plan.problem.num_reqs;
  p.pages.kv_len = plan.kv_len.data();
  std::vector<int32_t> table, indptr, indices;
  if (given(block_table)) {
    Borrowed t(block_table, "block_table");
    t.dims(2).dtype_is(kDLInt, 32, "int32").contiguous();
    table.assign(static_cast<const int32_t*>(t.data()), static_cast<const int32_t*>(t.data()) + t.numel());
    p.pages.block_table = table.data();
    p.pages.block_table_cols = int32_t(t.size(1));
  } else {
    indptr = int32_values(page_indptr, "page_indptr");
    indices = int32_values(page_indices, "page_indices");
    p.pages.page_indptr = indptr.data();
    p.pages.page_indices = indices.data();
  }
  p.out = o.out_tokens();
  std::unique_ptr<Borrowed> l;
  if (!lse.is_none()) {
    l = std::make_unique<Borrowed>(lse, "lse");
    l->dims(2).dtype_is(kDLFloat, 32, "float32").contiguous();
    p.lse = static_cast<float*>(l->data());
  }
  p.scale = scale.is_none() ? 1.0f / std::sqrt(float(c.view.k.head_dim)) : scale.cast<float>();
  p.causal = causal;
  p.window_left = window_left;
  p.window_right = window_right;
  p.softcap = softcap;
  std::vector<float> slopes, sink;
  if (given(alibi_slopes)) slopes = alibi_slopes.cast<std::vector<float>>(), p.alibi_slopes = slopes.data();
  if (given(sinks)) sink = sinks.cast<std::vector<float>>(), p.sinks = sink.data();
  mask.set(p, std::size_t(plan.problem.num_reqs));
  Scratch ws(plan.workspace_bytes);
  p.workspace = ws.get();
  p.workspace_bytes = plan.workspace_bytes;
  {
    py::gil_scoped_release nogil;
    run(plan, p);
  }
  if (return_lse) return py::make_tuple(out, lse);
  return out;
}

template <class Run>
void def_attention(py::module_& m, Run run, const char* doc) {
  m.def(
      "paged_attention",
      [run](const Plan& pl, py::handle q, const KVCache& c, py::handle block_table, py::handle page_indptr,
            py::handle page_indices, py::object out, py::object lse, bool return_lse, py::object scale, bool causal,
            int32_t window_left, int32_t window_right, float softcap, py::handle alibi_slopes, py::handle sinks,
            py::handle custom_mask, py::handle mask_indptr, py::handle mask_packed) {
        const CustomMask mask(custom_mask, mask_indptr, mask_packed);
        return attention_call(pl, q, c, block_table, page_indptr, page_indices, out, lse, return_lse, scale, causal,
                              window_left, window_right, softcap, alibi_slopes, sinks, mask, run);
      },
      py::arg("plan"), py::arg("q"), py::arg("cache"), py::arg("block_table") = py::none(),
      py::arg("page_indptr") = py::none(), py::arg("page_indices") = py::none(), py::arg("out") = py::none(),
      py::arg("lse") = py::none(), py::arg("return_lse") = false, py::arg("scale") = py::none(),
      py::arg("causal") = true, py::arg("window_left") = -1, py::arg("window_right") = -1, py::arg("softcap") = 0.0f,
      py::arg("alibi_slopes") = py::none(), py::arg("sinks") = py::none(), py::arg("custom_mask") = py::none(),
      py::arg("mask_indptr") = py::none(), py::arg("mask_packed") = py::none(), doc);
}

}  // namespace

void bind_attention(py::module_& m, py::module_& ref) {
  py::class_<Plan>(m, "AttentionPlan", "A batch step's work partition, reused by every layer (plan_attention).")
      .def_property_readonly("workspace_bytes", [](const Plan& p) { return p.plan.workspace_bytes; })
      .def_property_readonly("num_items", [](const Plan& p) { return p.plan.items.size(); })
      .def_property_readonly("kv_chunk", [](const Plan& p) { return p.plan.kv_chunk; });
  m.def(
      "plan_attention",
      [](py::handle q_indptr, py::handle kv_len, int32_t num_q_heads, int32_t num_kv_heads, int32_t head_dim_qk,
         int32_t head_dim_v, int num_threads, int32_t kv_chunk) {
        const std::vector<int32_t> qi = int32_values(q_indptr, "q_indptr"), kl = int32_values(kv_len, "kv_len");
        AttentionProblem pr;
        pr.num_reqs = int32_t(kl.size());
        if (qi.size() != kl.size() + 1) throw Error("pagedinfer: q_indptr must have len(kv_len) + 1 entries");
        pr.q_indptr = qi.data();
        pr.kv_len = kl.data();
        pr.num_q_heads = num_q_heads;
        pr.num_kv_heads = num_kv_heads;
        pr.head_dim_qk = head_dim_qk;
        pr.head_dim_v = head_dim_v > 0 ? head_dim_v : head_dim_qk;
        pr.num_threads = num_threads;
        pr.kv_chunk = kv_chunk;
        return Plan{plan_attention(pr)};
      },
      py::arg("q_indptr"), py::arg("kv_len"), py::arg("num_q_heads"), py::arg("num_kv_heads"), py::arg("head_dim_qk"),
      py::arg("head_dim_v") = 0, py::arg("num_threads") = 1, py::arg("kv_chunk") = 0,
      "q_indptr [num_reqs + 1] and kv_len [num_reqs] (int32) of a batch step.");
  const char* doc = R"(q [tokens, num_q_heads, head_dim_qk] against the cache; pages by block_table [num_reqs, cols] (int32)
or page_indptr / page_indices. Returns out [tokens, num_q_heads, head_dim_v] in q's dtype (or the given out), and
lse [tokens, num_q_heads] (natural log) with return_lse. Masks and options as attention.hpp; custom_mask: each
request's q_len x kv_len mask from byte mask_indptr[r], packed bits (uint8, little bit order, FlashInfer's
segment_packbits) or dense (bool).)";
  def_attention(m, [](const AttentionPlan& plan, const AttentionParams& p) { paged_attention(plan, p); }, doc);
  def_attention(ref, [](const AttentionPlan&, const AttentionParams& p) { reference::paged_attention(p); }, doc);
  m.def(
      "merge_states",
      [](py::handle a_obj, py::handle lse_a_obj, py::handle b_obj, py::handle lse_b_obj, py::object out,
         py::object lse_out, int num_threads) {
        Borrowed a(a_obj, "a"), b(b_obj, "b"), la(lse_a_obj, "lse_a"), lb(lse_b_obj, "lse_b");
        a.dims(3);
        la.dims(2).dtype_is(kDLFloat, 32, "float32").contiguous();
        lb.dims(2).dtype_is(kDLFloat, 32, "float32").contiguous();
        if (out.is_none()) out = empty_like_dtype({a.size(0), a.size(1), a.size(2)}, a.dtype());
        if (lse_out.is_none()) lse_out = empty_with({a.size(0), a.size(1)}, "float32");
        Borrowed o(out, "out"), lo(lse_out, "lse_out");
        lo.dims(2).dtype_is(kDLFloat, 32, "float32").contiguous();
        if (la.numel() != a.size(0) * a.size(1) || lb.numel() != la.numel() || lo.numel() != la.numel())
          throw Error("pagedinfer: lse_a, lse_b and lse_out must be [tokens, heads] of a");
        MergeStatesParams p;
        p.num_tokens = a.size(0);
        p.num_heads = int32_t(a.size(1));
        p.head_dim = int32_t(a.size(2));
        p.a = a.tokens();
        p.b = b.tokens();
        p.out = o.out_tokens();
        p.lse_a = static_cast<const float*>(la.data());
        p.lse_b = static_cast<const float*>(lb.data());
        p.lse_out = static_cast<float*>(lo.data());
        p.num_threads = num_threads;
        {
          py::gil_scoped_release nogil;
          merge_states(p);
        }
        return py::make_tuple(out, lse_out);
      },
      py::arg("a"), py::arg("lse_a"), py::arg("b"), py::arg("lse_b"), py::arg("out") = py::none(),
      py::arg("lse_out") = py::none(), py::arg("num_threads") = 1,
      "Merges partial results over disjoint keys: (out, lse_out), [tokens, heads, dim] and [tokens, heads].");
  m.def("attention_kernel_name", [](const std::string& q, const std::string& kv) {
    return std::string(attention_kernel_name(parse_dtype(q), parse_dtype(kv)));
  });
}

}  // namespace pagedinfer::python
