// Golden vectors (golden.hpp) for pagedinfer.golden: files as (dtype, shape, bytes) triples;
// python/pagedinfer/golden.py turns them into torch tensors and back.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pagedinfer/golden.hpp"

namespace pagedinfer::python {
namespace {

namespace golden = pagedinfer::golden;

py::dict tensors_to_py(const std::map<std::string, golden::Tensor>& tensors) {
  py::dict out;
  for (const auto& [name, t] : tensors)
    out[py::str(name)] = py::make_tuple(t.dtype, t.shape,
                                        py::bytes(reinterpret_cast<const char*>(t.data.data()), t.data.size()));
  return out;
}

std::map<std::string, golden::Tensor> tensors_from_py(const py::dict& tensors) {
  std::map<std::string, golden::Tensor> out;
  for (const auto& [name, value] : tensors) {
    const auto triple = value.cast<py::tuple>();
    golden::Tensor t;
    t.dtype = triple[0].cast<std::string>();
    t.shape = triple[1].cast<std::vector<int64_t>>();
    const std::string bytes = triple[2].cast<std::string>();
    t.data.assign(bytes.begin(), bytes.end());
    out[name.cast<std::string>()] = std::move(t);
  }
  return out;
}

py::tuple file_to_py(const golden::File& f) { return py::make_tuple(tensors_to_py(f.tensors), f.metadata); }

golden::File file_from_py(const py::dict& tensors, const std::map<std::string, std::string>& metadata) {
  golden::File f;
  f.tensors = tensors_from_py(tensors);
  f.metadata = metadata;
  return f;
}

}  // namespace

void bind_golden(py::module_& m) {
  py::module_ g = m.def_submodule("_golden", "Golden-vector files (used by pagedinfer.golden).");
  g.def("generate", [](const std::string& spec) {
    golden::File f;
    {
      py::gil_scoped_release unlocked;
      f = golden::generate(spec);
    }
    return file_to_py(f);
  });
  g.def("read", [](const std::string& path) { return file_to_py(golden::read_safetensors(path)); });
  g.def("read_npy", [](const std::string& path) {
    std::map<std::string, golden::Tensor> one{{"", golden::read_npy(path)}};
    return tensors_to_py(one)[""];
  });
  g.def("write", [](const std::string& path, const py::dict& tensors, const std::map<std::string, std::string>& meta) {
    golden::write_safetensors(path, file_from_py(tensors, meta));
  });
  g.def("check", [](const py::dict& tensors, const std::map<std::string, std::string>& meta, const py::dict& candidate,
                    int max_worst) {
    const golden::Report r = golden::check(file_from_py(tensors, meta), tensors_from_py(candidate), max_worst);
    py::list outputs, worst;
    for (const auto& o : r.outputs)
      outputs.append(py::dict(py::arg("name") = o.name, py::arg("elements") = o.elements,
                              py::arg("failures") = o.failures, py::arg("max_abs_error") = o.max_abs_error,
                              py::arg("max_bound_ratio") = o.max_bound_ratio));
    for (const auto& w : r.worst)
      worst.append(py::dict(py::arg("tensor") = w.tensor, py::arg("index") = w.index, py::arg("got") = w.got,
                            py::arg("expected") = w.expected, py::arg("bound") = w.bound));
    return py::dict(py::arg("passed") = r.pass, py::arg("outputs") = outputs, py::arg("worst") = worst,
                    py::arg("text") = r.to_string());
  });
  g.def("suite", &golden::standard_suite);
}

}  // namespace pagedinfer::python
