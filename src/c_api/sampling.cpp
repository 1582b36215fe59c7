// The C ABI's sampling entry points (pagedinfer.h, sampling.hpp).
#include "c_api/guard.hpp"
#include "pagedinfer/pagedinfer.hpp"

using namespace pagedinfer;
namespace dl = pagedinfer::dlpack;
using pagedinfer::c_api::guard;
using pagedinfer::c_api::non_null;

namespace {

// The C request structs copied field by field into `requests` (their layouts are not shared).
SampleParams sample_params(const pi_sample_args* a, std::vector<SamplingParams>* requests) {
  non_null(a, "args");
  SampleParams p;
  const DLTensor& l = dl::usable(a->logits, "logits");
  dl::dims(l, 2, 2, "logits");
  if (dl::size(l, 1) > 1 && dl::stride(l, 1) != 1) dl::fail("logits", "must have unit stride along the vocabulary");
  p.num_reqs = dl::size(l, 0);
  p.vocab = dl::size(l, 1);
  p.logits = {dl::data(l), dl::dtype(l, "logits"), p.num_reqs > 1 ? dl::stride(l, 0) : p.vocab, 0};
  non_null(a->requests, "requests");
  for (int64_t r = 0; r < p.num_reqs; ++r) {
    const pi_sampling_params& s = a->requests[r];
    requests->push_back({s.temperature, s.top_k, s.top_p, s.min_p, s.repetition_penalty, s.presence_penalty,
                         s.frequency_penalty, s.seed, s.step});
  }
  p.requests = requests->data();
  if (a->prev_indptr) {
    int64_t n = 0, m = 0;
    p.prev_indptr = dl::index_array<int64_t>(a->prev_indptr, "prev_indptr", &n);
    if (n != p.num_reqs + 1) dl::fail("prev_indptr", "must have num_reqs + 1 elements");
    p.prev_tokens = dl::index_array<int32_t>(a->prev_tokens, "prev_tokens", &m);
    if (m < p.prev_indptr[p.num_reqs]) dl::fail("prev_tokens", "holds fewer tokens than prev_indptr[num_reqs]");
  }
  int64_t n = 0;
  p.tokens = const_cast<int32_t*>(dl::index_array<int32_t>(a->tokens, "tokens", &n));
  if (n != p.num_reqs) dl::fail("tokens", "must have num_reqs elements");
  if (a->logprobs) {
    const DLTensor& lp = dl::usable(a->logprobs, "logprobs");
    dl::contiguous(lp, "logprobs");
    if (!dl::is(lp, kDLFloat, 32) || dl::numel(lp) != p.num_reqs) dl::fail("logprobs", "must be float32 [num_reqs]");
    p.logprobs = static_cast<float*>(dl::data(lp));
  }
  p.num_threads = a->num_threads;
  p.workspace = a->workspace;
  p.workspace_bytes = a->workspace_bytes;
  return p;
}

}  // namespace

extern "C" {

pi_status pi_sample_workspace_size(const pi_sample_args* args, size_t* bytes) {
  return guard([&] {
    std::vector<SamplingParams> requests;
    *non_null(bytes, "bytes") = sample_workspace_size(sample_params(args, &requests));
  });
}

pi_status pi_sample(const pi_sample_args* args) {
  return guard([&] {
    std::vector<SamplingParams> requests;
    sample(sample_params(args, &requests));
  });
}

pi_status pi_reference_sample(const pi_sample_args* args) {
  return guard([&] {
    std::vector<SamplingParams> requests;
    reference::sample(sample_params(args, &requests));
  });
}

float pi_sampling_uniform(uint64_t seed, uint64_t step) { return sampling_uniform(seed, step); }

}  // extern "C"
