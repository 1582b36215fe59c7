// RMSNorm, RoPE tables and apply_rope (with the fused append).
#include <pybind11/stl.h>

#include <cstring>

#include "bindings.hpp"

namespace pagedinfer::python {

namespace {

RmsNormParams norm_params(const Borrowed& x, const Borrowed& w, float eps, bool plus_one, int threads) {
  x.dims_between(2, 3);
  w.dims(1);
  RmsNormParams p;
  p.num_tokens = x.size(0);
  p.num_heads = x.ndim() == 3 ? int32_t(x.size(1)) : 1;
  p.dim = int32_t(x.size(-1));
  p.weight = w.data();
  p.weight_dtype = w.dtype();
  if (w.size(0) != p.dim || (w.size(0) > 1 && w.stride(0) != 1))
    throw Error("pagedinfer: weight must be contiguous [" + std::to_string(p.dim) + "]");
  p.eps = eps;
  p.weight_plus_one = plus_one;
  p.num_threads = threads;
  return p;
}

template <void (*Norm)(const RmsNormParams&)>
py::object rms_norm_call(py::handle x_obj, py::handle w_obj, float eps, py::object out, bool plus_one, int threads) {
  Borrowed x(x_obj, "x"), w(w_obj, "weight");
  RmsNormParams p = norm_params(x, w, eps, plus_one, threads);
  if (out.is_none()) {
    std::vector<int64_t> shape;
    for (int d = 0; d < x.ndim(); ++d) shape.push_back(x.size(d));
    out = empty_like_dtype(shape, x.dtype());
  }
  Borrowed o(out, "out");
  p.input = x.tokens();
  p.output = o.out_tokens();
  {
    py::gil_scoped_release nogil;
    Norm(p);
  }
  return out;
}

template <void (*Fused)(const RmsNormParams&)>
py::object fused_call(py::handle x_obj, py::handle res_obj, py::handle w_obj, float eps, py::object out, bool plus_one,
                      int threads) {
  Borrowed x(x_obj, "x"), r(res_obj, "residual"), w(w_obj, "weight");
  RmsNormParams p = norm_params(x, w, eps, plus_one, threads);
  if (out.is_none()) out = py::reinterpret_borrow<py::object>(x_obj);  // in place, as vLLM
  Borrowed o(out, "out");
  p.input = x.tokens();
  p.output = o.out_tokens();
  p.residual = r.out_tokens();
  {
    py::gil_scoped_release nogil;
    Fused(p);
  }
  return out;
}

RopeStyle parse_style(const std::string& s) {
  if (s == "neox") return RopeStyle::neox;
  if (s == "gptj") return RopeStyle::gptj;
  throw Error("pagedinfer: style '" + s + "' must be 'neox' or 'gptj'");
}

// The RoPE params over q / k (either may be None) and a cos_sin_cache [max_position, rotary_dim].
struct RopeCall {
  std::unique_ptr<Borrowed> q, k, table;
  std::vector<int64_t> positions;
  std::vector<int32_t> section;
  RopeParams p;

  RopeCall(py::handle q_obj, py::handle k_obj, py::handle positions_obj, py::handle cache_obj,
           const std::string& style, py::handle mrope_section, bool interleaved, int threads,
           int32_t rotary_offset) {
    table = std::make_unique<Borrowed>(cache_obj, "cos_sin_cache");
    table->dims(2).contiguous();
    p.table = {table->data(), table->dtype(), table->size(0), int32_t(table->size(1))};
    p.style = parse_style(style);
    p.num_threads = threads;
    p.rotary_offset = rotary_offset;
    if (given(q_obj)) {
      q = std::make_unique<Borrowed>(q_obj, "q");
      q->dims(3);
      p.q = q->out_tokens();
      p.num_q_heads = int32_t(q->size(1));
      p.head_dim = int32_t(q->size(2));
      p.num_tokens = q->size(0);
    }
    if (given(k_obj)) {
      k = std::make_unique<Borrowed>(k_obj, "k");
      k->dims(3);
      p.k = k->out_tokens();
      p.num_kv_heads = int32_t(k->size(1));
      p.head_dim = int32_t(k->size(2));
      p.num_tokens = k->size(0);
    }
    if (given(mrope_section)) {
      section = mrope_section.cast<std::vector<int32_t>>();
      if (section.size() != 3) throw Error("pagedinfer: mrope_section must have 3 entries");
      p.mrope_section = section.data();
      p.mrope_interleaved = interleaved;
      py::object flat = positions_obj.attr("reshape")(-1);
      positions = int64_values(flat, "positions");
    } else {
      positions = int64_values(positions_obj, "positions");
    }
    p.positions = positions.data();
  }
};

template <void (*Rope)(const RopeParams&)>
void rope_call(py::handle q, py::handle k, py::handle positions, py::handle cache, const std::string& style,
               py::handle section, bool interleaved, int threads, int32_t rotary_offset) {
  RopeCall c(q, k, positions, cache, style, section, interleaved, threads, rotary_offset);
  py::gil_scoped_release nogil;
  Rope(c.p);
}

void apply_rope_kernel(const RopeParams& p) { apply_rope(p); }
void apply_rope_reference(const RopeParams& p) { reference::apply_rope(p); }
void rms_norm_kernel(const RmsNormParams& p) { rms_norm(p); }
void rms_norm_reference(const RmsNormParams& p) { reference::rms_norm(p); }
void fused_kernel(const RmsNormParams& p) { fused_add_rms_norm(p); }
void fused_reference(const RmsNormParams& p) { reference::fused_add_rms_norm(p); }

template <void (*Norm)(const RmsNormParams&), void (*Fused)(const RmsNormParams&), void (*Rope)(const RopeParams&)>
void def_all(py::module_& m) {
  m.def("rms_norm", &rms_norm_call<Norm>, py::arg("x"), py::arg("weight"), py::arg("eps") = 1e-6f,
        py::arg("out") = py::none(), py::arg("weight_plus_one") = false, py::arg("num_threads") = 1,
        "x [tokens, dim] or [tokens, heads, dim] (QK norm); returns out (new, or the given one; may be x).");
  m.def("fused_add_rms_norm", &fused_call<Fused>, py::arg("x"), py::arg("residual"), py::arg("weight"),
        py::arg("eps") = 1e-6f, py::arg("out") = py::none(), py::arg("weight_plus_one") = false,
        py::arg("num_threads") = 1,
        "residual = round(x + residual) in place; out = rmsnorm(residual), in x itself when out is None.");
  m.def("apply_rope", &rope_call<Rope>, py::arg("q"), py::arg("k"), py::arg("positions"), py::arg("cos_sin_cache"),
        py::arg("style") = "neox", py::arg("mrope_section") = py::none(), py::arg("mrope_interleaved") = false,
        py::arg("num_threads") = 1, py::arg("rotary_offset") = 0,
        "Rotates q [tokens, q_heads, head_dim] and k [tokens, kv_heads, head_dim] in place (either may be None);\n"
        "elements [rotary_offset, rotary_offset + rotary_dim) (MLA: 512 of 576).");
}

}  // namespace

void bind_norm_rope(py::module_& m, py::module_& ref) {
  def_all<rms_norm_kernel, fused_kernel, apply_rope_kernel>(m);
  def_all<rms_norm_reference, fused_reference, apply_rope_reference>(ref);
  m.def(
      "make_rope_cache",
      [](int32_t rotary_dim, int64_t max_position, double theta, const std::string& scaling, double factor,
         int64_t original_max_position, double beta_fast, double beta_slow, double attn_factor, double low_freq_factor,
         double high_freq_factor) {
        RopeConfig c;
        c.rotary_dim = rotary_dim;
        c.max_position = max_position;
        c.theta = theta;
        c.scaling = parse_rope_scaling(scaling);
        c.factor = factor;
        c.original_max_position = original_max_position;
        c.beta_fast = beta_fast;
        c.beta_slow = beta_slow;
        c.attn_factor = attn_factor;
        c.low_freq_factor = low_freq_factor;
        c.high_freq_factor = high_freq_factor;
        const RopeCache rc = make_rope_cache(c);
        py::object t = empty_with({rc.max_position, rc.rotary_dim}, "float32");
        Borrowed b(t, "cos_sin_cache");
        std::memcpy(b.data(), rc.cos_sin.data(), rc.cos_sin.size() * sizeof(float));
        return t;
      },
      py::arg("rotary_dim"), py::arg("max_position"), py::arg("theta") = 10000.0, py::arg("scaling") = "none",
      py::arg("factor") = 1.0, py::arg("original_max_position") = 0, py::arg("beta_fast") = 32.0,
      py::arg("beta_slow") = 1.0, py::arg("attn_factor") = 1.0, py::arg("low_freq_factor") = 1.0,
      py::arg("high_freq_factor") = 4.0, "vLLM's cos_sin_cache [max_position, rotary_dim] (float32): cos then sin.");
  m.def(
      "apply_rope_and_append_kv",
      [](py::handle q, py::handle k, py::handle value, py::handle positions, py::handle cos_sin_cache,
         const KVCache& cache, py::handle slot_mapping, const std::string& style, int threads, int32_t rotary_offset) {
        RopeCall c(q, k, positions, cos_sin_cache, style, py::none(), false, threads, rotary_offset);
        std::unique_ptr<Borrowed> v;  // None for a latent cache (V inside K)
        if (given(value)) v = std::make_unique<Borrowed>(value, "value");
        const std::vector<int64_t> slots = int64_values(slot_mapping, "slot_mapping");
        RopeAppendKvParams p{c.p, cache.view, v ? v->tokens() : TokensView{}, slots.data()};
        py::gil_scoped_release nogil;
        apply_rope_and_append_kv(p);
      },
      py::arg("q"), py::arg("k"), py::arg("value"), py::arg("positions"), py::arg("cos_sin_cache"), py::arg("cache"),
      py::arg("slot_mapping"), py::arg("style") = "neox", py::arg("num_threads") = 1, py::arg("rotary_offset") = 0,
      "q rotated in place; k rotated into the cache slots with value (None: a latent cache); k itself unchanged.");
  m.def("rms_norm_kernel_name", [](const std::string& x, const std::string& w) {
    return std::string(rms_norm_kernel_name(parse_dtype(x), parse_dtype(w)));
  });
}

}  // namespace pagedinfer::python
