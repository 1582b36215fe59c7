// A decode step the way an engine runs it on pagedinfer:
//   1. a paged KV cache (bf16, vLLM's CPU layout [pages, kv_heads, page_size, head_dim]);
//   2. each sequence owns scattered pages, listed in a block table;
//   3. the new token's K/V are written through slot_mapping (negative slots are padding);
//   4. one plan per batch step, reused by every layer; run allocates nothing;
//   5. the reference recomputes the result in double, as a validation harness would.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "pagedinfer/pagedinfer.hpp"

using namespace pagedinfer;

int main() {
  const int32_t qo_heads = 32, kv_heads = 8, dim = 128, page_size = 16, num_pages = 64, layers = 4;
  const std::vector<int32_t> kv_len = {37, 90};  // tokens per sequence, incl. the new one
  const int32_t batch = int32_t(kv_len.size());

  std::mt19937 rng(0);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  auto random_bf16 = [&](std::size_t n) {
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = float_to_bf16(u(rng));
    return v;
  };

  // 1. One layer's K and V pools (a real engine has one pair per layer).
  const std::size_t pool_elems = std::size_t(num_pages) * kv_heads * page_size * dim;
  std::vector<uint16_t> k_pool = random_bf16(pool_elems), v_pool = random_bf16(pool_elems);
  const KVCacheView cache =
      kv_cache_hnd(k_pool.data(), v_pool.data(), DType::bf16, num_pages, page_size, kv_heads, dim, dim);

  // 2. Scattered, out-of-order pages: sequence 0 uses pages 41, 7, 19; sequence 1 uses 3, 60, ...
  const int32_t cols = 6;
  const std::vector<int32_t> block_table = {41, 7, 19, -1, -1, -1,  //
                                            3, 60, 12, 33, 25, 50};
  PageTable pages;
  pages.num_reqs = batch;
  pages.kv_len = kv_len.data();
  pages.block_table = block_table.data();
  pages.block_table_cols = cols;

  // 3. Append this step's K/V (one token per sequence) at position kv_len - 1.
  std::vector<int64_t> slot_mapping;
  for (int32_t r = 0; r < batch; ++r) {
    const int32_t pos = kv_len[r] - 1;
    slot_mapping.push_back(int64_t(block_table[r * cols + pos / page_size]) * page_size + pos % page_size);
  }
  const std::vector<uint16_t> new_k = random_bf16(std::size_t(batch) * kv_heads * dim);
  const std::vector<uint16_t> new_v = random_bf16(std::size_t(batch) * kv_heads * dim);
  append_kv({cache, {new_k.data(), DType::bf16, kv_heads * dim, dim}, {new_v.data(), DType::bf16, kv_heads * dim, dim},
            slot_mapping.data(), batch});

  // 4. Plan once for the step; run it for every layer with the same workspace.
  const std::vector<int32_t> q_indptr = {0, 1, 2};  // one query token per sequence: decode
  AttentionProblem problem;
  problem.num_reqs = batch;
  problem.q_indptr = q_indptr.data();
  problem.kv_len = kv_len.data();
  problem.num_q_heads = qo_heads;
  problem.num_kv_heads = kv_heads;
  problem.head_dim_qk = problem.head_dim_v = dim;
  problem.num_threads = 2;
  const AttentionPlan plan = plan_attention(problem);
  std::vector<float> workspace_storage(plan.workspace_bytes / sizeof(float) + 16);
  void* workspace = reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(workspace_storage.data()) + 63) / 64 * 64);

  const std::vector<uint16_t> q = random_bf16(std::size_t(batch) * qo_heads * dim);
  std::vector<float> out(std::size_t(batch) * qo_heads * dim), lse(std::size_t(batch) * qo_heads);
  AttentionParams params;
  params.q = {q.data(), DType::bf16, qo_heads * dim, dim};
  params.q_indptr = q_indptr.data();
  params.num_q_heads = qo_heads;
  params.cache = cache;
  params.pages = pages;
  params.out = {out.data(), DType::f32, qo_heads * dim, dim};
  params.lse = lse.data();
  params.scale = 1.f / std::sqrt(float(dim));
  params.workspace = workspace;
  params.workspace_bytes = plan.workspace_bytes;
  for (int32_t layer = 0; layer < layers; ++layer) paged_attention(plan, params);

  // 5. Validate against the double-precision reference.
  std::vector<float> ref(out.size());
  AttentionParams ref_params = params;
  ref_params.out.data = ref.data();
  ref_params.lse = nullptr;
  reference::paged_attention(ref_params);
  double max_err = 0;
  for (std::size_t i = 0; i < out.size(); ++i) max_err = std::fmax(max_err, std::fabs(double(out[i]) - ref[i]));
  std::printf("paged decode: %d sequences, %d layers, ISA %s, max |out - reference| = %.3g\n", batch, layers,
              isa_name(active_isa()), max_err);
  // Bound (attention.hpp): on AVX512-BF16 the bf16 kernel rounds P to bf16, so an output may
  // move by 2^-8 * max|v| (|v| <= 1 here); the fp32 kernels stay far below that.
  return max_err < std::ldexp(1.0, -8) ? 0 : 1;
}
