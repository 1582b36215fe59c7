// Sampling (sampling.hpp): per-request parameters as scalars (every request) or sequences.
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "pagedinfer/sampling.hpp"

namespace pagedinfer::python {

namespace {

// A parameter for every request: a scalar for all of them, or a sequence of num_reqs values.
template <class T>
std::vector<T> per_request(py::handle obj, int64_t num_reqs, const char* name) {
  if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::str>(obj)) {
    const auto values = obj.cast<std::vector<T>>();
    if (int64_t(values.size()) != num_reqs)
      throw Error(std::string("pagedinfer: ") + name + " has " + std::to_string(values.size()) +
                  " values for " + std::to_string(num_reqs) + " requests");
    return values;
  }
  return std::vector<T>(static_cast<size_t>(num_reqs), obj.cast<T>());
}

py::object run_sample(bool reference_impl, py::handle logits, py::handle temperature, py::handle top_k,
                      py::handle top_p, py::handle min_p, py::handle repetition_penalty, py::handle presence_penalty,
                      py::handle frequency_penalty, py::handle seed, py::handle step, py::handle previous,
                      bool return_logprobs, int num_threads) {
  Borrowed l(logits, "logits");
  l.dims(2);
  if (l.size(1) > 1 && l.stride(1) != 1) throw Error("pagedinfer: logits must have unit stride along the vocabulary");
  const int64_t reqs = l.size(0);
  const auto t = per_request<float>(temperature, reqs, "temperature");
  const auto k = per_request<int32_t>(top_k, reqs, "top_k");
  const auto p = per_request<float>(top_p, reqs, "top_p");
  const auto mp = per_request<float>(min_p, reqs, "min_p");
  const auto rep = per_request<float>(repetition_penalty, reqs, "repetition_penalty");
  const auto pres = per_request<float>(presence_penalty, reqs, "presence_penalty");
  const auto freq = per_request<float>(frequency_penalty, reqs, "frequency_penalty");
  const auto seeds = per_request<uint64_t>(seed, reqs, "seed");
  const auto steps = per_request<uint64_t>(step, reqs, "step");
  std::vector<SamplingParams> requests(static_cast<size_t>(reqs));
  for (size_t r = 0; r < requests.size(); ++r)
    requests[r] = {t[r], k[r], p[r], mp[r], rep[r], pres[r], freq[r], seeds[r], steps[r]};
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> prev;
  if (given(previous)) {
    const auto lists = previous.cast<std::vector<std::vector<int32_t>>>();
    if (int64_t(lists.size()) != reqs)
      throw Error("pagedinfer: previous has " + std::to_string(lists.size()) + " lists for " + std::to_string(reqs) +
                  " requests");
    for (const auto& list : lists) {
      prev.insert(prev.end(), list.begin(), list.end());
      indptr.push_back(int64_t(prev.size()));
    }
  }
  py::object tokens = empty_with({reqs}, "int32");
  py::object logprobs = return_logprobs ? empty_with({reqs}, "float32") : py::none();
  Borrowed tok(tokens, "tokens");
  SampleParams s;
  s.num_reqs = reqs;
  s.vocab = l.size(1);
  s.logits = {l.data(), l.dtype(), reqs > 1 ? l.stride(0) : l.size(1), 0};
  s.requests = requests.data();
  if (given(previous)) {
    s.prev_indptr = indptr.data();
    s.prev_tokens = prev.data();
  }
  s.tokens = static_cast<int32_t*>(tok.data());
  std::unique_ptr<Borrowed> lp;
  if (return_logprobs) {
    lp = std::make_unique<Borrowed>(logprobs, "logprobs");
    s.logprobs = static_cast<float*>(lp->data());
  }
  s.num_threads = num_threads;
  {
    py::gil_scoped_release unlocked;
    if (reference_impl) {
      reference::sample(s);
    } else {
      const size_t bytes = sample_workspace_size(s);
      std::vector<uint8_t> ws(bytes + 64);
      s.workspace = ws.data() + (64 - reinterpret_cast<uintptr_t>(ws.data()) % 64) % 64;
      s.workspace_bytes = bytes;
      sample(s);
    }
  }
  if (return_logprobs) return py::make_tuple(tokens, logprobs);
  return tokens;
}

template <bool kReference>
void def_sample(py::module_& m) {
  m.def(
      "sample",
      [](py::handle logits, py::handle temperature, py::handle top_k, py::handle top_p, py::handle min_p,
         py::handle repetition_penalty, py::handle presence_penalty, py::handle frequency_penalty, py::handle seed,
         py::handle step, py::handle previous, bool return_logprobs, int num_threads) {
        return run_sample(kReference, logits, temperature, top_k, top_p, min_p, repetition_penalty, presence_penalty,
                          frequency_penalty, seed, step, previous, return_logprobs, num_threads);
      },
      py::arg("logits"), py::arg("temperature") = 1.0f, py::arg("top_k") = 0, py::arg("top_p") = 1.0f,
      py::arg("min_p") = 0.0f, py::arg("repetition_penalty") = 1.0f, py::arg("presence_penalty") = 0.0f,
      py::arg("frequency_penalty") = 0.0f, py::arg("seed") = 0, py::arg("step") = 0, py::arg("previous") = py::none(),
      py::arg("return_logprobs") = false, py::arg("num_threads") = 1,
      "Next tokens (int32 [num_reqs]) from logits [num_reqs, vocab] (sampling.hpp); each parameter a scalar or one "
      "value per request; previous: a list of token lists for the penalties; with return_logprobs, (tokens, raw "
      "log-probabilities).");
}

}  // namespace

void bind_sampling(py::module_& m, py::module_& ref) {
  def_sample<false>(m);
  def_sample<true>(ref);
  m.def("sampling_uniform", &sampling_uniform, py::arg("seed"), py::arg("step"),
        "The u in [0, 1) of a request's draw at (seed, step): Philox4x32-10.");
  m.def("sample_kernel_name", [] { return std::string(sample_kernel_name()); });
}

}  // namespace pagedinfer::python
