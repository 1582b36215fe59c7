// The Python module pagedinfer._pagedinfer: the C++ API over DLPack tensors (tensors.hpp). Each
// op family's bindings are in their own file; this one holds errors, CPU and kernel control.
#include <pybind11/stl.h>

#include "bindings.hpp"

namespace pagedinfer::python {

namespace {

FeatureSet features_from(py::handle names) {
  if (py::isinstance<py::str>(names)) return parse_features(names.cast<std::string>());
  std::string joined;
  for (py::handle n : names) joined += n.cast<std::string>() + ",";
  return parse_features(joined);
}

std::vector<std::string> feature_list(FeatureSet s) {
  std::vector<std::string> out;
  for (int i = 0; i < kNumCpuFeatures; ++i)
    if (s >> i & 1) out.push_back(cpu_feature_name(static_cast<CpuFeature>(i)));
  return out;
}

void bind_control(py::module_& m) {
  m.def("detected_isa", [] { return std::string(isa_name(detected_isa())); }, "The best ISA level of this CPU.");
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); }, "The level kernels use now.");
  m.def("max_isa", [] { return std::string(isa_name(max_isa())); });
  m.def("set_max_isa", [](const std::string& name) { set_max_isa(parse_isa(name.c_str())); }, py::arg("isa"),
        "Caps the ISA level: baseline, avx2, avx512, avx512_bf16 or amx.");
  m.def("detected_features", [] { return feature_list(detected_features()); });
  m.def("active_features", [] { return feature_list(active_features()); });
  m.def("disabled_features", [] { return feature_list(disabled_features()); });
  m.def("set_disabled_features", [](py::handle names) { set_disabled_features(features_from(names)); },
        py::arg("features"), "Features no kernel may use: a list of names or a comma-separated string.");
  m.def("tuning_vendor", [] { return std::string(tuning_vendor()); });
  m.def("kernel_ops", &kernel_ops);
  m.def(
      "registered_kernels",
      [](const std::string& op) {
        py::list out;
        for (const KernelInfo& k : registered_kernels(op))
          out.append(py::dict(py::arg("op") = k.op, py::arg("name") = k.name, py::arg("needs") = feature_list(k.needs),
                              py::arg("runs_here") = kernel_runs_here(k), py::arg("serves") = k.serves));
        return out;
      },
      py::arg("op") = "", "The registered kernels of an op (all ops when empty), in table order.");
  m.def("force_kernel", &force_kernel, py::arg("op"), py::arg("name"),
        "Forces a kernel for every call it can compute; an empty name restores the table.");
  m.def("forced_kernel", &forced_kernel, py::arg("op"));
}

}  // namespace

}  // namespace pagedinfer::python

PYBIND11_MODULE(_pagedinfer, m) {
  using namespace pagedinfer::python;
  m.doc() = "pagedinfer: CPU kernels for LLM serving (paged attention, KV cache, RoPE, RMSNorm, linear, sampling)";
  py::register_exception<pagedinfer::Error>(m, "Error", PyExc_ValueError);
  py::module_ ref = m.def_submodule("reference", "The double-precision oracles, same signatures as the kernels.");
  bind_control(m);
  bind_kv_cache(m);
  bind_attention(m, ref);
  bind_cascade(m);
  bind_norm_rope(m, ref);
  bind_linear(m, ref);
  bind_sampling(m, ref);
#ifdef PAGEDINFER_WITH_GOLDEN
  bind_golden(m);
#endif
}
