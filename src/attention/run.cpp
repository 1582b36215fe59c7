// paged_attention: validate, run the plan's work items on the caller's threads, merge splits.
#include <atomic>
#include <cmath>
#include <limits>

#include "attention/kernel.hpp"
#include "attention/validate.hpp"
#include "common/convert.hpp"
#include "common/threading.hpp"

namespace pagedinfer {

namespace detail {

float apply_attention_sink(const AttentionParams& p, int32_t head, float& lse) {
  if (!p.sinks) return 1.f;
  const float sink = p.sinks[head];
  const float hi = std::max(lse, sink);
  const float merged = hi + std::log(std::exp(lse - hi) + std::exp(sink - hi));
  const float factor = std::exp(lse - merged);
  lse = merged;
  return factor;
}

void write_attention_row(const AttentionParams& p, int64_t token, int32_t head, const float* o, float lse) {
  const float factor = apply_attention_sink(p, head, lse);
  void* out = static_cast<char*>(p.out.data) +
              (token * p.out.stride_token + head * p.out.stride_head) * int64_t(dtype_size(p.out.dtype));
  for (int32_t d = 0; d < p.cache.v.head_dim; ++d) store_from_float(out, p.out.dtype, std::size_t(d), o[d] * factor);
  if (p.lse) p.lse[token * p.num_q_heads + head] = lse;
}

}  // namespace detail

namespace {

// Combines the split partials of one merge item row by row into the first slot, then writes.
void merge_partials(const AttentionParams& p, const AttentionMergeItem& mi, int32_t group, int32_t rows_max,
                    int32_t v_stride, float* partial_out, const float* partial_lse) {
  const int32_t dv = p.cache.v.head_dim;
  for (int32_t r = 0; r < (mi.q_end - mi.q_begin) * group; ++r) {
    float m = -std::numeric_limits<float>::infinity();
    for (int32_t s = 0; s < mi.num_partials; ++s)
      m = std::max(m, partial_lse[std::size_t(mi.first_partial + s) * rows_max + r]);
    float* acc = partial_out + (std::size_t(mi.first_partial) * rows_max + r) * v_stride;
    float total = 0.f;
    if (m != -std::numeric_limits<float>::infinity()) {
      for (int32_t s = 0; s < mi.num_partials; ++s) {
        const float w = std::exp(partial_lse[std::size_t(mi.first_partial + s) * rows_max + r] - m);
        const float* o = partial_out + (std::size_t(mi.first_partial + s) * rows_max + r) * v_stride;
        for (int32_t d = 0; d < dv; ++d) acc[d] = s == 0 ? w * o[d] : acc[d] + w * o[d];
        total += w;
      }
      for (int32_t d = 0; d < dv; ++d) acc[d] /= total;
    } else {
      for (int32_t d = 0; d < dv; ++d) acc[d] = 0.f;
    }
    const float lse = total > 0.f ? m + std::log(total) : m;
    const int64_t token = p.q_indptr[mi.req] + mi.q_begin + r / group;
    detail::write_attention_row(p, token, mi.kv_head * group + r % group, acc, lse);
  }
}

}  // namespace

void paged_attention(const AttentionPlan& plan, const AttentionParams& p) {
  detail::validate_shape_against_plan(plan, p);
  detail::validate_attention_params(p, "paged_attention");
  detail::validate_attention_against_plan(plan, p, p.workspace, p.workspace_bytes);
  const detail::AttentionItemKernel kernel = detail::attention_kernel(p.q.dtype, p.cache.dtype);
  const int32_t group = p.num_q_heads / p.cache.num_kv_heads;
  const int32_t rows_max = plan.q_tile * group;
  const detail::AttentionScratchLayout lay(rows_max, p.cache.k.head_dim, p.cache.v.head_dim);
  const int threads = plan.problem.num_threads;
  char* base = static_cast<char*>(p.workspace);
  float* partial_out = reinterpret_cast<float*>(base + std::size_t(threads) * lay.bytes);
  int32_t num_partials = 0;
  for (const auto& m : plan.merges) num_partials += m.num_partials;
  float* partial_lse = partial_out + std::size_t(num_partials) * rows_max * lay.v_stride;

  std::atomic<std::size_t> next{0};
  detail::parallel_team(threads, [&](int t) {
    float* scratch = reinterpret_cast<float*>(base + std::size_t(t) * lay.bytes);
    for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < plan.items.size();) {
      const AttentionWorkItem& it = plan.items[i];
      detail::AttentionItemOutput dst;
      if (it.partial >= 0) {
        dst.partial_out = partial_out + std::size_t(it.partial) * rows_max * lay.v_stride;
        dst.partial_lse = partial_lse + std::size_t(it.partial) * rows_max;
      }
      kernel(p, it, group, dst, scratch);
    }
  });
  detail::parallel_for(int64_t(plan.merges.size()), threads, 1, [&](int64_t i) {
    merge_partials(p, plan.merges[std::size_t(i)], group, rows_max, lay.v_stride, partial_out, partial_lse);
  });
}

}  // namespace pagedinfer
