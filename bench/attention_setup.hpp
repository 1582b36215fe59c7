// The attention benchmarks' shapes and their data (bench_attention.cpp): Llama-3-8B / Qwen2-7B
// heads, a paged HND cache of bf16, f16 or an 8-bit type, shuffled block tables, and as many
// copies as "cold" needs.
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "pagedinfer/pagedinfer.hpp"
#include "roofline.hpp"

namespace bench {

using namespace pagedinfer;

struct Shape {
  std::string tag;
  int32_t batch, q_len, ctx, page;
  bool causal_prefill;  // q_len == ctx prompt
  bool dense;           // one page per sequence
  bool cold;            // rotate over copies larger than 8x L3
};

constexpr int32_t kQoHeads = 32, kKvHeads = 8, kHeadDim = 128;

// The attention problem of a batch of these heads (q_indptr: one more entry than kv_len).
inline AttentionProblem problem(const std::vector<int32_t>& q_indptr, const std::vector<int32_t>& kv_len, int threads) {
  AttentionProblem pr;
  pr.num_reqs = int32_t(kv_len.size());
  pr.q_indptr = q_indptr.data();
  pr.kv_len = kv_len.data();
  pr.num_q_heads = kQoHeads;
  pr.num_kv_heads = kKvHeads;
  pr.head_dim_qk = pr.head_dim_v = kHeadDim;
  pr.num_threads = threads;
  return pr;
}


// Everything one shape needs, built once and shared by its 1- and 2-thread runs.
struct Setup {
  Shape shape;
  int32_t copies = 1, pages_per_copy = 0, page_size = 0;
  Bytes k, v, q, out, workspace;
  std::size_t workspace_bytes = 0;
  std::vector<int32_t> q_indptr{0}, kv_len;
  std::vector<std::vector<int32_t>> tables;  // [copy] padded block table
  int32_t cols = 0;
  double kv_bytes = 0, flops = 0;

  DType kv = DType::bf16;

  explicit Setup(const Shape& s, DType kv_dtype = DType::bf16) : shape(s), kv(kv_dtype) {
    page_size = s.dense ? s.ctx : s.page;
    cols = (s.ctx + page_size - 1) / page_size;
    pages_per_copy = s.batch * cols;
    const std::size_t page_bytes = kv_page_bytes(kv, page_size, kKvHeads, kHeadDim);
    const std::size_t copy_bytes = 2 * page_bytes * pages_per_copy;
    if (s.cold) copies = int32_t(bench::cold_copies(double(copy_bytes)));
    const std::size_t pages = std::size_t(pages_per_copy) * copies;
    k = alloc(page_bytes * pages);
    v = alloc(page_bytes * pages);
    fill_pool(k.get(), pages, page_bytes, 1);
    fill_pool(v.get(), pages, page_bytes, 2);
    std::mt19937 rng(7);
    std::vector<int32_t> perm(pages);
    std::iota(perm.begin(), perm.end(), 0);
    if (!s.dense) std::shuffle(perm.begin(), perm.end(), rng);
    for (int32_t c = 0; c < copies; ++c)
      tables.emplace_back(perm.begin() + std::ptrdiff_t(c) * pages_per_copy,
                          perm.begin() + std::ptrdiff_t(c + 1) * pages_per_copy);
    for (int32_t r = 0; r < s.batch; ++r) {
      q_indptr.push_back(q_indptr.back() + s.q_len);
      kv_len.push_back(s.ctx);
    }
    const std::size_t q_elems = std::size_t(q_indptr.back()) * kQoHeads * kHeadDim;
    q = alloc(q_elems * 2);
    out = alloc(q_elems * 2);
    fill_bf16(reinterpret_cast<uint16_t*>(q.get()), q_elems, 3);
    // The bytes decode reads: K and V of every token (with an i8 cache's scales), q and out.
    kv_bytes = double(s.batch) * s.ctx * 2 * (double(page_bytes) / page_size) + 2.0 * double(q_elems) * 2;
    const double pairs = s.causal_prefill ? double(s.q_len) * (s.q_len + 1) / 2 : double(s.q_len) * s.ctx;
    flops = double(s.batch) * kQoHeads * pairs * 4 * kHeadDim;
  }

  // Random values of the cache's dtype: bf16 and f16 in [-1, 1), fp8 codes of magnitude < 2 (no
  // NaN), int8 codes in [-63, 63] with row scales 1 / 64.
  void fill_pool(uint8_t* pool, std::size_t pages, std::size_t page_bytes, uint64_t seed) const {
    if (kv == DType::bf16) return fill_bf16(reinterpret_cast<uint16_t*>(pool), page_bytes * pages / 2, seed);
    if (kv == DType::f16) {  // the bf16 values, exactly representable in f16 at this range
      const std::size_t n = page_bytes * pages / 2;
      fill_bf16(reinterpret_cast<uint16_t*>(pool), n, seed);
      std::vector<uint16_t> tmp(reinterpret_cast<uint16_t*>(pool), reinterpret_cast<uint16_t*>(pool) + n);
      return convert(tmp.data(), DType::bf16, pool, DType::f16, n);
    }
    std::mt19937_64 rng(seed);
    const std::size_t rows = std::size_t(page_size) * kKvHeads, values = rows * kHeadDim;
    for (std::size_t p = 0; p < pages; ++p) {
      uint8_t* page = pool + p * page_bytes;
      for (std::size_t i = 0; i < values; ++i) page[i] = uint8_t(rng() & 0xbf);
      if (kv == DType::i8) std::fill_n(reinterpret_cast<float*>(page + values), rows, 1.f / 64);
    }
  }

  AttentionPlan plan(int threads) {
    AttentionPlan p = plan_attention(problem(q_indptr, kv_len, threads));
    if (p.workspace_bytes > workspace_bytes) {
      workspace = alloc(p.workspace_bytes);
      workspace_bytes = p.workspace_bytes;
    }
    return p;
  }

  AttentionParams params(int32_t copy) {
    AttentionParams p;
    p.q = {q.get(), DType::bf16, kQoHeads * kHeadDim, kHeadDim};
    p.q_indptr = q_indptr.data();
    p.num_q_heads = kQoHeads;
    const int64_t pages = int64_t(pages_per_copy) * copies;
    p.cache = kv_cache_hnd(k.get(), v.get(), kv, pages, page_size, kKvHeads, kHeadDim, kHeadDim);
    p.cache.k_scale = p.cache.v_scale = 1.f / 64;
    p.pages.num_reqs = shape.batch;
    p.pages.kv_len = kv_len.data();
    p.pages.block_table = tables[std::size_t(copy)].data();
    p.pages.block_table_cols = cols;
    p.out = {out.get(), DType::bf16, kQoHeads * kHeadDim, kHeadDim};
    p.scale = 1.f / std::sqrt(float(kHeadDim));
    p.causal = true;
    return p;
  }
};

}  // namespace bench
