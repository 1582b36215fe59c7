// The work partition of one batch step, shared by every layer.
#include <algorithm>

#include "attention/kernel.hpp"
#include "attention/validate.hpp"
#include "common/check.hpp"

namespace pagedinfer {

namespace {

// Split-KV kicks in when there are fewer than this many (request, query tile, KV head) units
// per thread: with dynamic scheduling, 4 units per thread keep the tail imbalance under ~25%.
constexpr int64_t kUnitsPerThread = 4;
// A split below 256 keys costs more in merging and per-item setup than it gains.
constexpr int32_t kMinSplitTokens = 256;

int32_t auto_kv_chunk(const AttentionProblem& pr, int32_t q_tile) {
  if (pr.num_threads == 1 || pr.kv_chunk == -1) return 0;
  int64_t units = 0, work = 0;
  for (int32_t r = 0; r < pr.num_reqs; ++r) {
    const int64_t tiles = (int64_t(pr.q_indptr[r + 1]) - pr.q_indptr[r] + q_tile - 1) / q_tile;
    units += tiles * pr.num_kv_heads;
    work += tiles * pr.num_kv_heads * pr.kv_len[r];
  }
  const int64_t target = kUnitsPerThread * pr.num_threads;
  if (units >= target) return 0;
  const int64_t chunk = std::max<int64_t>(kMinSplitTokens, (work + target - 1) / target);
  return detail::round_up(int32_t(std::min<int64_t>(chunk, INT32_MAX / 2)), detail::kAttnTile);
}

}  // namespace

AttentionPlan plan_attention(const AttentionProblem& pr) {
  detail::validate_attention_problem(pr);
  AttentionPlan plan;
  plan.problem = pr;
  plan.problem.q_indptr = nullptr;
  plan.problem.kv_len = nullptr;
  plan.q_indptr.assign(pr.q_indptr, pr.q_indptr + (pr.num_reqs ? pr.num_reqs + 1 : 0));
  if (pr.num_reqs == 0) plan.q_indptr.assign(1, 0);
  plan.kv_len.assign(pr.kv_len, pr.kv_len + pr.num_reqs);

  const int32_t group = pr.num_q_heads / pr.num_kv_heads;
  int32_t max_q = 1;
  for (int32_t r = 0; r < pr.num_reqs; ++r) max_q = std::max(max_q, pr.q_indptr[r + 1] - pr.q_indptr[r]);
  plan.q_tile = pr.q_tile > 0 ? std::min(max_q, pr.q_tile) : std::min(max_q, std::max(1, detail::kAttnRowsTarget / group));
  plan.kv_chunk = pr.kv_chunk > 0 ? pr.kv_chunk : auto_kv_chunk(pr, plan.q_tile);

  // The work items, counted before any is made: a tiny kv_chunk over long requests would ask for
  // billions of them.
  int64_t item_count = 0;
  for (int32_t r = 0; r < pr.num_reqs; ++r) {
    const int64_t q_tiles = (int64_t(pr.q_indptr[r + 1]) - pr.q_indptr[r] + plan.q_tile - 1) / plan.q_tile;
    const int64_t splits = plan.kv_chunk > 0 ? std::max<int64_t>(1, (int64_t(pr.kv_len[r]) + plan.kv_chunk - 1) / plan.kv_chunk) : 1;
    item_count += q_tiles * pr.num_kv_heads * splits;
  }
  PAGEDINFER_CHECK(item_count <= (int64_t(1) << 24), "plan_attention", "the plan would have ", item_count,
                   " work items (more than 2^24): kv_chunk = ", plan.kv_chunk, " is too small for these lengths");

  int32_t partials = 0;
  for (int32_t r = 0; r < pr.num_reqs; ++r) {
    const int32_t q_len = pr.q_indptr[r + 1] - pr.q_indptr[r], kv = pr.kv_len[r];
    for (int32_t q0 = 0; q0 < q_len; q0 += plan.q_tile) {
      const int32_t q1 = std::min(q_len, q0 + plan.q_tile);
      for (int32_t g = 0; g < pr.num_kv_heads; ++g) {
        if (plan.kv_chunk == 0 || kv <= plan.kv_chunk) {
          plan.items.push_back({r, g, q0, q1, 0, kv, -1});
          continue;
        }
        const int32_t first = partials;
        for (int32_t k0 = 0; k0 < kv; k0 += plan.kv_chunk)
          plan.items.push_back({r, g, q0, q1, k0, std::min(kv, k0 + plan.kv_chunk), partials++});
        plan.merges.push_back({r, g, q0, q1, first, partials - first});
      }
    }
  }
  // Longest first, so that dynamic scheduling ends with the short items.
  std::stable_sort(plan.items.begin(), plan.items.end(), [](const AttentionWorkItem& a, const AttentionWorkItem& b) {
    return int64_t(a.q_end - a.q_begin) * (a.kv_end - a.kv_begin) > int64_t(b.q_end - b.q_begin) * (b.kv_end - b.kv_begin);
  });

  const int32_t rows_max = plan.q_tile * group;
  const detail::AttentionScratchLayout lay(rows_max, pr.head_dim_qk, pr.head_dim_v);
  plan.workspace_bytes = std::size_t(pr.num_threads) * lay.bytes +
                         std::size_t(partials) * rows_max * (std::size_t(lay.v_stride) + 1) * sizeof(float);
  return plan;
}

}  // namespace pagedinfer
