// check(): a candidate's outputs against a golden file's references and bounds.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "common/check.hpp"
#include "pagedinfer/golden.hpp"

namespace pagedinfer::golden {
namespace {

constexpr const char* kWhere = "golden::check";

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) out.push_back(part);
  return out;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& shape) {
  std::vector<int64_t> index(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    index[d] = shape[d] ? i % shape[d] : 0;
    i = shape[d] ? i / shape[d] : 0;
  }
  return index;
}

const Tensor& find(const std::map<std::string, Tensor>& tensors, const std::string& name, const char* whose) {
  const auto it = tensors.find(name);
  PAGEDINFER_CHECK(it != tensors.end(), kWhere, "the ", whose, " has no tensor \"", name, "\"");
  return it->second;
}

}  // namespace

double Mismatch::excess() const {
  if (!std::isfinite(got)) return INFINITY;
  return bound > 0 ? std::fabs(got - expected) / bound : (got == expected ? 0.0 : INFINITY);
}

Report check(const File& golden, const std::map<std::string, Tensor>& candidate, int max_worst) {
  const auto outputs_it = golden.metadata.find("pagedinfer.outputs");
  PAGEDINFER_CHECK(outputs_it != golden.metadata.end(), kWhere,
                   "the golden file has no pagedinfer.outputs metadata (not written by pagedinfer-golden)");
  Report report;
  std::vector<Mismatch> worst;
  for (const std::string& name : split(outputs_it->second)) {
    const Tensor& ref = find(golden.tensors, name, "golden file");
    const Tensor& bound = find(golden.tensors, name + ".bound", "golden file");
    const Tensor& got = find(candidate, name, "candidate");
    PAGEDINFER_CHECK(bound.shape == ref.shape, kWhere, "the golden file's \"", name, ".bound\" has shape ",
                     shape_text(bound.shape), ", its reference ", shape_text(ref.shape));
    PAGEDINFER_CHECK(got.shape == ref.shape, kWhere, "candidate \"", name, "\" has shape ", shape_text(got.shape),
                     "; the golden output is ", shape_text(ref.shape));
    OutputReport o;
    o.name = name;
    o.elements = ref.numel();
    for (int64_t i = 0; i < o.elements; ++i) {
      Mismatch m{name, {}, got.get(i), ref.get(i), bound.get(i)};
      bool ok;
      if (!std::isfinite(m.expected)) {
        ok = m.got == m.expected || (std::isnan(m.got) && std::isnan(m.expected));
      } else {
        ok = std::isfinite(m.got) && std::fabs(m.got - m.expected) <= m.bound;
        if (std::isfinite(m.got)) {
          o.max_abs_error = std::max(o.max_abs_error, std::fabs(m.got - m.expected));
          o.max_bound_ratio = std::max(o.max_bound_ratio, m.excess());
        } else {
          o.max_bound_ratio = INFINITY;
        }
      }
      if (ok) continue;
      ++o.failures;
      if (max_worst > 0 && (int(worst.size()) < max_worst || m.excess() > worst.back().excess())) {
        m.index = unravel(i, ref.shape);
        worst.push_back(std::move(m));
        std::stable_sort(worst.begin(), worst.end(),
                         [](const Mismatch& a, const Mismatch& b) { return a.excess() > b.excess(); });
        if (int(worst.size()) > max_worst) worst.pop_back();
      }
    }
    report.pass = report.pass && o.failures == 0;
    report.outputs.push_back(o);
  }
  report.worst = std::move(worst);
  return report;
}

std::string Report::to_string() const {
  std::ostringstream os;
  os.precision(6);
  for (const OutputReport& o : outputs)
    os << o.name << ": " << o.elements << " elements, " << o.failures << " outside the bound, max |error| "
       << o.max_abs_error << ", max |error| / bound " << o.max_bound_ratio << "\n";
  for (const Mismatch& m : worst) {
    os << "  " << m.tensor << shape_text(m.index) << ": got " << m.got << ", expected " << m.expected << ", bound "
       << m.bound << " (|error| / bound " << m.excess() << ")\n";
  }
  os << (pass ? "PASS" : "FAIL") << "\n";
  return os.str();
}

}  // namespace pagedinfer::golden
