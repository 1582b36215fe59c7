// sample(): the rules of sampling.hpp on the vectorized passes of the ISA kernels (kernel.hpp),
// one request at a time per thread, each in its thread's part of the workspace.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "common/check.hpp"
#include "common/threading.hpp"
#include "pagedinfer/sampling.hpp"
#include "sampling/kernel.hpp"
#include "sampling/rules.hpp"
#include "sampling/validate.hpp"

namespace pagedinfer {

namespace {

constexpr const char* kWhere = "sample";
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr size_t kAlign = 64;
// Top-p without top-k collects the tokens with v >= M - d for these d until they hold the
// nucleus; the last takes every token of nonzero fp32 weight (exp underflows below M - 87).
constexpr float kWidenings[] = {4.f, 8.f, 16.f, 32.f, 64.f, 128.f};

size_t round_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

struct Candidate {
  float v;
  int32_t position;  // in the list
};

// One thread's part of the workspace, for a vocabulary of n.
struct ThreadSpace {
  float* v;           // [n] the request's v (sampling.hpp)
  int32_t* counts;    // [n] previous-token counts, all zero between requests
  int32_t* idx;       // [n] candidate tokens, ascending
  float* w;           // [n] their weights (or scratch)
  Candidate* order;   // [n] candidates by value
  float* sums;        // [n / kWeightBlock] weight sums per block
  float* block_max;   // [n / kMaxBlock] a value of each block, its maximum as loaded (kernel.hpp)
  float* block_upper; // [n / kMaxBlock] at least every value of each block (after penalties)
  uint8_t* loaded;    // [n / kMaxBlock] whether v holds the block (lazy requests)

  static int64_t blocks(int64_t n, int64_t size) { return (n + size - 1) / size; }
  static size_t bytes(int64_t n) {
    return 4 * round_up(size_t(n) * 4) + round_up(size_t(n) * sizeof(Candidate)) +
           round_up(size_t(blocks(n, detail::kWeightBlock)) * 4) + 3 * round_up(size_t(blocks(n, detail::kMaxBlock)) * 4);
  }
  ThreadSpace(void* base, int64_t n) {
    char* at = static_cast<char*>(base);
    const auto take = [&at](size_t size) {
      char* p = at;
      at += round_up(size);
      return p;
    };
    v = reinterpret_cast<float*>(take(size_t(n) * 4));
    counts = reinterpret_cast<int32_t*>(take(size_t(n) * 4));
    idx = reinterpret_cast<int32_t*>(take(size_t(n) * 4));
    w = reinterpret_cast<float*>(take(size_t(n) * 4));
    order = reinterpret_cast<Candidate*>(take(size_t(n) * sizeof(Candidate)));
    sums = reinterpret_cast<float*>(take(size_t(blocks(n, detail::kWeightBlock)) * 4));
    block_max = reinterpret_cast<float*>(take(size_t(blocks(n, detail::kMaxBlock)) * 4));
    block_upper = reinterpret_cast<float*>(take(size_t(blocks(n, detail::kMaxBlock)) * 4));
    loaded = reinterpret_cast<uint8_t*>(take(size_t(blocks(n, detail::kMaxBlock))));
  }
};

class RequestSampler {
 public:
  RequestSampler(const SampleParams& p, const detail::SamplingKernel& k, const ThreadSpace& ws)
      : p_(p), k_(k), ws_(ws), n_(p.vocab) {}

  // Request r's token; *bad: a refused logit's index, -1 for a row of -inf only, or -2 (none).
  int32_t run(int64_t r, int64_t* bad) {
    const SamplingParams& s = p_.requests[r];
    const bool greedy = detail::greedy(s);
    const float divisor = greedy ? 1.f : s.temperature;
    // Lazy: the pass from memory stores no v when the rules need the values of a few blocks only
    // (greedy; top-k by the block bound; no penalties), which are loaded again as needed.
    const bool penalties = p_.prev_indptr && p_.prev_indptr[r + 1] > p_.prev_indptr[r];
    const int64_t blocks = ThreadSpace::blocks(n_, detail::kMaxBlock);
    lazy_ = !penalties && (greedy || (s.top_k > 0 && s.top_k < n_ && blocks >= s.top_k));
    row_ = row(r);
    divisor_ = divisor;
    float m = 0;
    *bad = k_.load_scaled(row_, p_.logits.dtype, n_, divisor, lazy_ ? nullptr : ws_.v, &m, ws_.block_max);
    if (*bad >= 0) return -1;
    if (lazy_) std::fill(ws_.loaded, ws_.loaded + blocks, uint8_t(0));
    std::copy(ws_.block_max, ws_.block_max + ThreadSpace::blocks(n_, detail::kMaxBlock), ws_.block_upper);
    if (penalize(r, divisor)) m = k_.max(ws_.v, n_);
    if (m == kNegInf) {
      *bad = -1;
      return -1;
    }
    *bad = -2;
    if (greedy) {
      select_at_least(m);  // the maximum's occurrences, ascending
      return ws_.idx[0];
    }
    const float floor = s.min_p > 0.f ? m + std::log(s.min_p) : kNegInf;
    const float u = detail::uniform_of(s.seed, s.step);
    if (s.top_k > 0 && s.top_k < n_) {
      int64_t c = top_k(s.top_k, floor);
      gather_weights(c, m);
      if (s.top_p < 1.f) c = nucleus(c, s.top_p, sequential_sum(c));
      return draw_list(c, u);
    }
    if (s.top_p < 1.f) {
      k_.block_weights(ws_.v, n_, m, floor, ws_.sums);
      const float total = block_total();
      for (float d : kWidenings) {
        const float tau = std::max(m - d, floor);
        int64_t c = select_at_least(tau);
        gather_weights(c, m);
        if (sequential_sum(c) >= s.top_p * total || d == kWidenings[std::size(kWidenings) - 1]) {
          c = nucleus(c, s.top_p, total);
          return draw_list(c, u);
        }
      }
    }
    k_.block_weights(ws_.v, n_, m, floor, ws_.sums);
    return draw_blocks(m, floor, u);
  }

  // log_softmax of request r's raw logits at `token` (fp32 sums), in the thread's scratch.
  float raw_logprob(int64_t r, int32_t token) {
    float m = 0;
    k_.load_scaled(row(r), p_.logits.dtype, n_, 1.f, ws_.w, &m, nullptr);
    k_.block_weights(ws_.w, n_, m, kNegInf, ws_.sums);
    return ws_.w[token] - m - std::log(block_total());
  }

 private:
  const char* row(int64_t r) const {
    return static_cast<const char*>(p_.logits.data) + r * p_.logits.stride_token * int64_t(dtype_size(p_.logits.dtype));
  }

  // Step 1 on ws_.v for request r's previous tokens; counts return to zero. True if any.
  bool penalize(int64_t r, float divisor) {
    if (!p_.prev_indptr || p_.prev_indptr[r + 1] == p_.prev_indptr[r]) return false;
    const SamplingParams& s = p_.requests[r];
    const int32_t* tokens = p_.prev_tokens + p_.prev_indptr[r];
    const int64_t count = p_.prev_indptr[r + 1] - p_.prev_indptr[r];
    for (int64_t i = 0; i < count; ++i) ++ws_.counts[tokens[i]];
    for (int64_t i = 0; i < count; ++i) {
      const int32_t t = tokens[i], c = ws_.counts[t];
      if (c == 0) continue;  // done at its first occurrence
      ws_.counts[t] = 0;
      const float l = raw_value(r, t);
      ws_.v[t] = detail::penalized(l, c, s) / divisor;
      float& upper = ws_.block_upper[t / detail::kMaxBlock];
      upper = std::max(upper, ws_.v[t]);
      ws_.block_max[t / detail::kMaxBlock] = ws_.v[t];  // still a value of the block
    }
    return true;
  }

  float raw_value(int64_t r, int32_t t) const {
    const char* x = row(r);
    switch (p_.logits.dtype) {
      case DType::f32: return reinterpret_cast<const float*>(x)[t];
      case DType::bf16: return bf16_to_float(reinterpret_cast<const uint16_t*>(x)[t]);
      case DType::f16: return f16_to_float(reinterpret_cast<const uint16_t*>(x)[t]);
      default: return 0.f;  // validated: a float type
    }
  }

  // The tokens with v >= max(floor, the top_k-th largest of those >= floor), ascending, in
  // ws_.idx. The top_k-th largest of k or more distinct values bounds the answer from below: of
  // the blocks' values (kernel.hpp) where there are k blocks, taken as the largest of each group
  // of about blocks / 2k (still a value of the group, and a shorter selection), else of all
  // values. So one filtering pass leaves a short list, whose top_k-th largest is the answer.
  int64_t top_k(int32_t k, float floor) {
    const int64_t blocks = ThreadSpace::blocks(n_, detail::kMaxBlock);
    const bool by_blocks = blocks >= k;
    int64_t count = n_;
    if (by_blocks) {
      const int64_t group = std::max<int64_t>(1, blocks / (2 * int64_t(k)));
      count = 0;
      for (int64_t b = 0; b < blocks; b += group)
        ws_.w[count++] = *std::max_element(ws_.block_max + b, ws_.block_max + std::min(blocks, b + group));
    } else {
      std::copy(ws_.v, ws_.v + n_, ws_.w);
    }
    std::nth_element(ws_.w, ws_.w + (k - 1), ws_.w + count, std::greater<float>());
    const float tau = std::max(ws_.w[k - 1], floor);
    int64_t c = select_at_least(tau);
    if (c <= k) return c;
    for (int64_t i = 0; i < c; ++i) ws_.w[i] = ws_.v[ws_.idx[i]];
    std::nth_element(ws_.w, ws_.w + (k - 1), ws_.w + c, std::greater<float>());
    return keep_at_least(c, ws_.w[k - 1]);
  }

  // The tokens with v >= t, ascending, into ws_.idx; returns their count. Blocks whose upper
  // bound is below t are skipped (and, lazy, the others loaded into v).
  int64_t select_at_least(float t) {
    const int64_t elem = int64_t(dtype_size(p_.logits.dtype)), block_bytes = detail::kMaxBlock * elem;
    if (lazy_)  // the blocks to load lie scattered over the row: request them all before the first
      for (int64_t b = 0; b < ThreadSpace::blocks(n_, detail::kMaxBlock); ++b)
        if (ws_.block_upper[b] >= t && !ws_.loaded[b])
          for (int64_t off = 0; off < std::min(block_bytes, (n_ - b * detail::kMaxBlock) * elem); off += 64)
            __builtin_prefetch(row_ + b * block_bytes + off, 0, 3);
    int64_t c = 0;
    for (int64_t b = 0; b < ThreadSpace::blocks(n_, detail::kMaxBlock); ++b) {
      if (ws_.block_upper[b] < t) continue;
      const int64_t begin = b * detail::kMaxBlock, len = std::min(detail::kMaxBlock, n_ - begin);
      if (lazy_ && !ws_.loaded[b]) {
        float unused = 0;
        k_.load_scaled(row_ + begin * elem, p_.logits.dtype, len, divisor_,
                       ws_.v + begin, &unused, nullptr);
        ws_.loaded[b] = 1;
      }
      const int64_t found = k_.select_at_least(ws_.v + begin, len, t, ws_.idx + c);
      for (int64_t i = c; i < c + found; ++i) ws_.idx[i] += int32_t(begin);
      c += found;
    }
    return c;
  }

  // Keeps the listed tokens with v >= t (and their weights), in order.
  int64_t keep_at_least(int64_t c, float t) {
    int64_t kept = 0;
    for (int64_t i = 0; i < c; ++i)
      if (ws_.v[ws_.idx[i]] >= t) {
        ws_.w[kept] = ws_.w[i];
        ws_.idx[kept++] = ws_.idx[i];
      }
    return kept;
  }

  // ws_.w[i] = the weight of listed token i.
  void gather_weights(int64_t c, float m) {
    for (int64_t i = 0; i < c; ++i) ws_.w[i] = ws_.v[ws_.idx[i]];
    k_.weights(ws_.w, c, m, kNegInf, ws_.w);
  }

  float sequential_sum(int64_t c) const {
    float total = 0.f;
    for (int64_t i = 0; i < c; ++i) total += ws_.w[i];
    return total;
  }

  float block_total() const {
    float total = 0.f;
    for (int64_t b = 0; b * detail::kWeightBlock < n_; ++b) total += ws_.sums[b];
    return total;
  }

  // Of the listed tokens (holding the nucleus of a set of weight `total`), those with v >= the
  // largest t whose {v >= t} holds top_p * total.
  int64_t nucleus(int64_t c, float top_p, float total) {
    for (int64_t i = 0; i < c; ++i) ws_.order[i] = {ws_.v[ws_.idx[i]], int32_t(i)};
    std::sort(ws_.order, ws_.order + c, [](const Candidate& a, const Candidate& b) { return a.v > b.v; });
    float mass = 0.f, t = ws_.order[c - 1].v;
    for (int64_t j = 0; j < c; ++j) {
      mass += ws_.w[ws_.order[j].position];
      if (mass >= top_p * total) {
        t = ws_.order[j].v;
        break;
      }
    }
    return keep_at_least(c, t);
  }

  // The first listed token whose cumulative weight exceeds u times the list's total.
  int32_t draw_list(int64_t c, float u) const {
    const float target = u * sequential_sum(c);
    float cum = 0.f;
    int64_t last = 0;  // the last token of nonzero weight, should rounding leave u uncovered
    for (int64_t i = 0; i < c; ++i) {
      if (ws_.w[i] <= 0.f) continue;
      last = i;
      cum += ws_.w[i];
      if (cum > target) return ws_.idx[i];
    }
    return ws_.idx[last];
  }

  // The same over every token with v >= floor: the block from the sums, then the token inside.
  int32_t draw_blocks(float m, float floor, float u) const {
    const float target = u * block_total();
    const int64_t blocks = (n_ + detail::kWeightBlock - 1) / detail::kWeightBlock;
    float cum = 0.f;
    int64_t b = 0, last_block = 0;
    for (; b < blocks; ++b) {
      if (ws_.sums[b] <= 0.f) continue;
      last_block = b;
      if (cum + ws_.sums[b] > target) break;
      cum += ws_.sums[b];
    }
    const bool past_the_end = b == blocks;  // rounding: u * total reached past the last block
    if (past_the_end) b = last_block;
    const int64_t begin = b * detail::kWeightBlock, len = std::min(detail::kWeightBlock, n_ - begin);
    k_.weights(ws_.v + begin, len, m, floor, ws_.w);
    int64_t last = 0;
    for (int64_t i = 0; i < len; ++i) {
      if (ws_.w[i] <= 0.f) continue;
      last = i;
      cum += ws_.w[i];
      if (cum > target && !past_the_end) return int32_t(begin + i);
    }
    return int32_t(begin + last);
  }

  const SampleParams& p_;
  const detail::SamplingKernel& k_;
  ThreadSpace ws_;
  int64_t n_;
  bool lazy_ = false;  // this request's v is in ws_.v only for its loaded blocks
  const char* row_ = nullptr;
  float divisor_ = 1.f;
};

}  // namespace

size_t sample_workspace_size(const SampleParams& p) {
  PAGEDINFER_CHECK(p.vocab >= 1 && p.vocab < (int64_t(1) << 31), "sample_workspace_size", "params.vocab = ", p.vocab,
                   " must be in [1, 2^31)");
  detail::check_num_threads(p.num_threads, "sample_workspace_size", "params.num_threads");
  return ThreadSpace::bytes(p.vocab) * size_t(p.num_threads);
}

float sampling_uniform(uint64_t seed, uint64_t step) { return detail::uniform_of(seed, step); }

void sample(const SampleParams& p) {
  detail::validate_sample(p, kWhere);
  if (p.num_reqs == 0) return;
  const size_t need = sample_workspace_size(p);
  PAGEDINFER_CHECK(p.workspace != nullptr, kWhere, "params.workspace is null (needs ", need, " bytes)");
  PAGEDINFER_CHECK(reinterpret_cast<uintptr_t>(p.workspace) % kAlign == 0, kWhere,
                   "params.workspace must be 64-byte aligned");
  PAGEDINFER_CHECK(p.workspace_bytes >= need, kWhere, "params.workspace_bytes = ", p.workspace_bytes,
                   " is smaller than sample_workspace_size() = ", need);
  const detail::SamplingKernel kernel = detail::sampling_kernel();
  const int threads = int(std::min<int64_t>(p.num_threads, p.num_reqs));
  std::vector<int64_t> bad(size_t(p.num_reqs), -2);
  std::atomic<int64_t> next{0};
  detail::parallel_team(threads, [&](int thread) {
    const ThreadSpace ws(static_cast<char*>(p.workspace) + size_t(thread) * ThreadSpace::bytes(p.vocab), p.vocab);
    if (p.prev_indptr) std::memset(ws.counts, 0, size_t(p.vocab) * 4);
    RequestSampler sampler(p, kernel, ws);
    for (int64_t r = next++; r < p.num_reqs; r = next++) {
      const int32_t token = sampler.run(r, &bad[size_t(r)]);
      if (token < 0) continue;
      p.tokens[r] = token;
      if (p.logprobs) p.logprobs[r] = sampler.raw_logprob(r, token);
    }
  });
  for (int64_t r = 0; r < p.num_reqs; ++r)
    if (bad[size_t(r)] != -2) {
      const int64_t i = bad[size_t(r)];
      const char* row = static_cast<const char*>(p.logits.data) + r * p.logits.stride_token * int64_t(dtype_size(p.logits.dtype));
      float value = 0.f;
      if (i >= 0) convert(row + i * int64_t(dtype_size(p.logits.dtype)), p.logits.dtype, &value, DType::f32, 1);
      detail::fail_logit(kWhere, r, i, value);
    }
}

}  // namespace pagedinfer
