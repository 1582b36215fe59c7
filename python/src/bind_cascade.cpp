// Cascade attention over shared prefixes: plan_cascade and cascade_attention.
#include <pybind11/stl.h>

#include <cmath>

#include "bindings.hpp"

namespace pagedinfer::python {

namespace {

struct CascadePlanHolder {
  CascadePlan plan;
};

// A level's page table from a block table tensor [entries, cols] (int32) or a pair
// (page_indptr, page_indices); kv_len from the plan. The vectors own the copies.
struct LevelPages {
  std::vector<int32_t> table, indptr, indices;
  PageTable view;
  LevelPages(py::handle pages, const AttentionPlan& plan, const char* name) {
    view.num_reqs = plan.problem.num_reqs;
    view.kv_len = plan.kv_len.data();
    if (py::isinstance<py::tuple>(pages)) {
      const py::tuple pair = pages.cast<py::tuple>();
      if (pair.size() != 2) throw Error(std::string("pagedinfer: ") + name + " must be a block table or (page_indptr, page_indices)");
      indptr = int32_values(pair[0], name);
      indices = int32_values(pair[1], name);
      view.page_indptr = indptr.data();
      view.page_indices = indices.data();
      return;
    }
    Borrowed t(pages, name);
    t.dims(2).dtype_is(kDLInt, 32, "int32").contiguous();
    table.assign(static_cast<const int32_t*>(t.data()), static_cast<const int32_t*>(t.data()) + t.numel());
    view.block_table = table.data();
    view.block_table_cols = int32_t(t.size(1));
  }
};

}  // namespace

void bind_cascade(py::module_& m) {
  py::class_<CascadePlanHolder>(m, "CascadePlan", "Both levels of a shared-prefix batch step (plan_cascade).")
      .def_property_readonly("workspace_bytes", [](const CascadePlanHolder& p) { return p.plan.workspace_bytes; });
  m.def(
      "plan_cascade",
      [](py::handle group_indptr, py::handle prefix_len, py::handle q_indptr, py::handle suffix_len, int32_t num_q_heads,
         int32_t num_kv_heads, int32_t head_dim_qk, int32_t head_dim_v, int num_threads) {
        const std::vector<int32_t> gi = int32_values(group_indptr, "group_indptr"), pl = int32_values(prefix_len, "prefix_len");
        const std::vector<int32_t> qi = int32_values(q_indptr, "q_indptr"), sl = int32_values(suffix_len, "suffix_len");
        if (gi.size() != pl.size() + 1 || qi.size() != sl.size() + 1)
          throw Error("pagedinfer: group_indptr / q_indptr must have one entry more than prefix_len / suffix_len");
        CascadeProblem pr{int32_t(pl.size()), gi.data(),   pl.data(),    int32_t(sl.size()), qi.data(), sl.data(),
                          num_q_heads,        num_kv_heads, head_dim_qk, head_dim_v > 0 ? head_dim_v : head_dim_qk,
                          num_threads};
        return CascadePlanHolder{plan_cascade(pr)};
      },
      py::arg("group_indptr"), py::arg("prefix_len"), py::arg("q_indptr"), py::arg("suffix_len"), py::arg("num_q_heads"),
      py::arg("num_kv_heads"), py::arg("head_dim_qk"), py::arg("head_dim_v") = 0, py::arg("num_threads") = 1,
      "Groups of consecutive requests sharing prefix_len[g] KV tokens; each request's own suffix_len[r] after them.");
  m.def(
      "cascade_attention",
      [](const CascadePlanHolder& pl, py::handle q_obj, const KVCache& c, py::handle shared_pages, py::handle unique_pages,
         py::object out, bool return_lse, py::object scale, float softcap) {
        const CascadePlan& plan = pl.plan;
        Borrowed q(q_obj, "q");
        q.dims(3);
        if (out.is_none()) out = empty_like_dtype({q.size(0), q.size(1), c.view.v.head_dim}, q.dtype());
        py::object lse = return_lse ? empty_with({q.size(0), q.size(1)}, "float32") : py::none();
        Borrowed o(out, "out");
        std::unique_ptr<Borrowed> l;
        const LevelPages shared(shared_pages, plan.shared, "shared_pages"), unique(unique_pages, plan.unique, "unique_pages");
        CascadeParams p;
        p.q = q.tokens();
        p.cache = c.view;
        p.shared_pages = shared.view;
        p.unique_pages = unique.view;
        p.out = o.out_tokens();
        if (return_lse) {
          l = std::make_unique<Borrowed>(lse, "lse");
          p.lse = static_cast<float*>(l->data());
        }
        p.scale = scale.is_none() ? 1.0f / std::sqrt(float(c.view.k.head_dim)) : scale.cast<float>();
        p.softcap = softcap;
        Scratch ws(plan.workspace_bytes);
        p.workspace = ws.get();
        p.workspace_bytes = plan.workspace_bytes;
        {
          py::gil_scoped_release nogil;
          cascade_attention(plan, p);
        }
        if (return_lse) return py::object(py::make_tuple(out, lse));
        return out;
      },
      py::arg("plan"), py::arg("q"), py::arg("cache"), py::arg("shared_pages"), py::arg("unique_pages"),
      py::arg("out") = py::none(), py::arg("return_lse") = false, py::arg("scale") = py::none(), py::arg("softcap") = 0.0f,
      "Attention over shared prefixes then each request's suffix, merged: equal to paged_attention over prefix +\n"
      "suffix. shared_pages / unique_pages: a block table [entries, cols] (int32) or (page_indptr, page_indices).");
}

}  // namespace pagedinfer::python
