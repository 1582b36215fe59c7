// Test helpers: typed random tensors, paged caches with shuffled pages, kernels to run.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "pagedinfer/pagedinfer.hpp"

namespace testutil {

using pagedinfer::DType;

// An AMD x86 CPU (a few kernel choices are tuned by vendor; PAGEDINFER_CPU_VENDOR overrides).
inline bool cpu_is_amd() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
#else
  return false;
#endif
}

// Restores the ISA cap when it leaves scope.
struct IsaCap {
  explicit IsaCap(pagedinfer::Isa isa) { pagedinfer::set_max_isa(isa); }
  ~IsaCap() { pagedinfer::set_max_isa(pagedinfer::kTopIsa); }
};

// Emulates a CPU class on this one: a cap and features disabled, both restored on leaving scope.
struct CpuClass {
  CpuClass(pagedinfer::Isa cap, pagedinfer::FeatureSet disabled) {
    pagedinfer::set_max_isa(cap);
    pagedinfer::set_disabled_features(disabled);
  }
  ~CpuClass() {
    pagedinfer::set_max_isa(pagedinfer::kTopIsa);
    pagedinfer::set_disabled_features(0);
  }
};

// Forces a kernel of an op while in scope (kernels.hpp).
struct ForcedKernel {
  std::string op;
  ForcedKernel(std::string o, const std::string& name) : op(std::move(o)) { pagedinfer::force_kernel(op, name); }
  ~ForcedKernel() { pagedinfer::force_kernel(op, ""); }
};

// RMSNorm params with their tensors set (residual: fused_add_rms_norm only).
inline pagedinfer::RmsNormParams with_io(pagedinfer::RmsNormParams p, const pagedinfer::TokensView& input,
                                         const pagedinfer::OutTokensView& output,
                                         const pagedinfer::OutTokensView& residual = {}) {
  p.input = input;
  p.output = output;
  p.residual = residual;
  return p;
}

// Quantize options for a fused gate/up weight.
inline pagedinfer::QuantizeOptions gate_up_options(const pagedinfer::QuantFormat& f) {
  pagedinfer::QuantizeOptions o(f);
  o.gate_up = true;
  return o;
}

// The names of an op's registered kernels.
inline std::vector<std::string> kernel_names(const std::string& op) {
  std::vector<std::string> out;
  for (const pagedinfer::KernelInfo& k : pagedinfer::registered_kernels(op)) out.push_back(k.name);
  return out;
}

// Runs body(name) with each registered kernel of `op` forced in turn that this CPU runs and
// that can compute the call: selected() returns the name of the kernel the call would run (the
// op's *_kernel_name()), which is the forced one exactly when it can. Kernels this CPU cannot
// run are reported by test_kernels (skipped by name). Returns the kernels run.
template <class Selected, class Body>
std::vector<std::string> for_each_kernel(const std::string& op, Selected&& selected, Body&& body) {
  std::vector<std::string> ran;
  for (const pagedinfer::KernelInfo& k : pagedinfer::registered_kernels(op)) {
    if (!pagedinfer::kernel_runs_here(k)) continue;
    const ForcedKernel forced(op, k.name);
    if (std::string(selected()) != k.name) continue;
    SCOPED_TRACE(std::string("kernel ") + k.name);
    body(std::string(k.name));
    ran.push_back(k.name);
    if (::testing::Test::HasFatalFailure()) break;
  }
  EXPECT_FALSE(ran.empty()) << "no " << op << " kernel computed the call";
  return ran;
}

// A typed buffer: elements stored in `dtype`, 64-byte aligned.
struct Buffer {
  DType dtype = DType::f32;
  std::vector<uint8_t> storage;
  std::size_t offset = 0;  // into storage, to reach 64-byte alignment
  std::size_t n = 0;

  Buffer() = default;
  Buffer(DType t, std::size_t count) : dtype(t), n(count) {
    storage.assign(count * pagedinfer::dtype_size(t) + 64, 0);
    offset = (64 - reinterpret_cast<uintptr_t>(storage.data()) % 64) % 64;
  }
  void* data() { return storage.data() + offset; }
  const void* data() const { return storage.data() + offset; }
  std::size_t bytes() const { return n * pagedinfer::dtype_size(dtype); }

  float get(std::size_t i) const {
    float f;
    pagedinfer::convert(static_cast<const uint8_t*>(data()) + i * pagedinfer::dtype_size(dtype), dtype, &f, DType::f32, 1);
    return f;
  }
  void set(std::size_t i, float x) {
    pagedinfer::convert(&x, DType::f32, static_cast<uint8_t*>(data()) + i * pagedinfer::dtype_size(dtype), dtype, 1);
  }
  void fill_uniform(std::mt19937& rng, float lo, float hi) {
    std::uniform_real_distribution<float> u(lo, hi);
    for (std::size_t i = 0; i < n; ++i) set(i, u(rng));
  }
  void fill(float x) {
    for (std::size_t i = 0; i < n; ++i) set(i, x);
  }
};

enum class Layout { nhd, hnd, combined_nhd, combined_hnd, latent };  // latent: kv_cache_mla (one head)
inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::nhd: return "nhd";
    case Layout::hnd: return "hnd";
    case Layout::combined_nhd: return "combined_nhd";
    case Layout::combined_hnd: return "combined_hnd";
    case Layout::latent: return "latent";
  }
  return "?";
}

// A KV pool in one of the layouts, with storage.
struct Pool {
  Buffer k, v;  // k holds both for combined layouts
  pagedinfer::KVCacheView view;

  Pool(Layout layout, DType t, int64_t pages, int32_t page_size, int32_t heads, int32_t dk, int32_t dv) {
    // Elements of type t per pool; an i8 pool's pages also hold their scales (kv_page_bytes).
    const std::size_t es = pagedinfer::dtype_size(t);
    const std::size_t ke = std::size_t(pages) * pagedinfer::kv_page_bytes(t, page_size, heads, dk) / es;
    const std::size_t ve = std::size_t(pages) * pagedinfer::kv_page_bytes(t, page_size, heads, dv) / es;
    switch (layout) {
      case Layout::nhd:
      case Layout::hnd:
        k = Buffer(t, ke);
        v = Buffer(t, ve);
        view = layout == Layout::nhd ? pagedinfer::kv_cache_nhd(k.data(), v.data(), t, pages, page_size, heads, dk, dv)
                                     : pagedinfer::kv_cache_hnd(k.data(), v.data(), t, pages, page_size, heads, dk, dv);
        break;
      case Layout::combined_nhd:
      case Layout::combined_hnd:
        k = Buffer(t, 2 * ke);
        view = layout == Layout::combined_nhd
                   ? pagedinfer::kv_cache_combined_nhd(k.data(), t, pages, page_size, heads, dk)
                   : pagedinfer::kv_cache_combined_hnd(k.data(), t, pages, page_size, heads, dk);
        break;
      case Layout::latent:  // V is the leading dv of K's rows: writing V writes K
        k = Buffer(t, ke);
        view = pagedinfer::kv_cache_mla(k.data(), t, pages, page_size, dk, dv);
        break;
    }
  }

  // Element (page, token, head, d) of K (which = 0) or V (which = 1), as float.
  float at(int which, int64_t page, int32_t tok, int32_t head, int32_t d) const {
    const pagedinfer::PagePool& p = which ? view.v : view.k;
    const int64_t off = page * p.stride_page + tok * p.stride_token + head * p.stride_head + d;
    float f;
    pagedinfer::convert(static_cast<const uint8_t*>(p.data) + off * pagedinfer::dtype_size(view.dtype), view.dtype, &f,
                        DType::f32, 1);
    return f;
  }
  void set(int which, int64_t page, int32_t tok, int32_t head, int32_t d, float x) {
    const pagedinfer::PagePool& p = which ? view.v : view.k;
    const int64_t off = page * p.stride_page + tok * p.stride_token + head * p.stride_head + d;
    pagedinfer::convert(&x, DType::f32, static_cast<uint8_t*>(p.data) + off * pagedinfer::dtype_size(view.dtype),
                        view.dtype, 1);
  }
};

// Page lists of a batch: each request gets pages drawn from a shuffled pool, so neighbouring
// pages of a request are far apart and out of order. Held in both table forms.
struct Pages {
  std::vector<int32_t> kv_len, block_table, page_indptr, page_indices;
  int32_t cols = 0;

  Pages(const std::vector<int32_t>& lens, int32_t page_size, int64_t num_pages, std::mt19937& rng) : kv_len(lens) {
    std::vector<int32_t> perm(static_cast<std::size_t>(num_pages));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    std::size_t next = 0;
    page_indptr.push_back(0);
    for (int32_t len : lens) {
      const int32_t n = (len + page_size - 1) / page_size;
      cols = std::max(cols, n + 1);  // one spare column: padded rows are longer than needed
      for (int32_t i = 0; i < n; ++i) page_indices.push_back(perm.at(next++));
      page_indptr.push_back(int32_t(page_indices.size()));
    }
    block_table.assign(lens.size() * std::size_t(cols), -1);  // padding entries are garbage ids
    for (std::size_t r = 0; r < lens.size(); ++r)
      for (int32_t i = page_indptr[r]; i < page_indptr[r + 1]; ++i)
        block_table[r * cols + std::size_t(i - page_indptr[r])] = page_indices[std::size_t(i)];
  }
  static int64_t pages_needed(const std::vector<int32_t>& lens, int32_t page_size) {
    int64_t n = 0;
    for (int32_t len : lens) n += (len + page_size - 1) / page_size;
    return n;
  }
  pagedinfer::PageTable table(bool csr) const {
    pagedinfer::PageTable t;
    t.num_reqs = int32_t(kv_len.size());
    t.kv_len = kv_len.data();
    if (csr) {
      t.page_indptr = page_indptr.data();
      t.page_indices = page_indices.data();
    } else {
      t.block_table = block_table.data();
      t.block_table_cols = cols;
    }
    return t;
  }
};

// Unit roundoff of a storage type (half an ulp at 1).
inline double unit_roundoff(DType t) {
  switch (t) {
    case DType::f32: return std::ldexp(1.0, -24);
    case DType::bf16: return std::ldexp(1.0, -8);
    case DType::f16: return std::ldexp(1.0, -11);
    default: return 1;  // 8-bit types are stored codes, not rounded results
  }
}

// The metadata of a batch, as plan_attention takes it.
inline pagedinfer::AttentionProblem attention_problem(const std::vector<int32_t>& q_indptr,
                                                      const std::vector<int32_t>& kv_len, int32_t qo_heads,
                                                      int32_t kv_heads, int32_t dq, int32_t dv, int threads = 1) {
  pagedinfer::AttentionProblem pr;
  pr.num_reqs = int32_t(kv_len.size());
  pr.q_indptr = q_indptr.data();
  pr.kv_len = kv_len.data();
  pr.num_q_heads = qo_heads;
  pr.num_kv_heads = kv_heads;
  pr.head_dim_qk = dq;
  pr.head_dim_v = dv;
  pr.num_threads = threads;
  return pr;
}

// A float weight [n, k] drawn from N(0, sigma^2).
inline std::vector<float> random_weights(int64_t n, int64_t k, std::mt19937& rng, float sigma) {
  std::normal_distribution<float> d(0.f, sigma);
  std::vector<float> w(std::size_t(n * k));
  for (auto& v : w) v = d(rng);
  return w;
}

// A GPTQ act-order checkpoint imported: random q and zero words, scales in [0.001, 0.01), g_idx
// a shuffled balanced assignment of k to groups.
inline pagedinfer::QuantizedWeight random_act_order_gptq(int64_t n, int64_t k, int bits, int group, std::mt19937& rng) {
  const int per = 32 / bits;
  std::uniform_int_distribution<int32_t> any;
  std::vector<int32_t> qweight(std::size_t(k / per * n)), qzeros(std::size_t(k / group * n / per));
  std::vector<int32_t> g_idx(static_cast<std::size_t>(k));
  for (auto& v : qweight) v = any(rng);
  for (auto& v : qzeros) v = any(rng);
  std::vector<uint16_t> scales(std::size_t(k / group * n));
  for (auto& s : scales) s = pagedinfer::float_to_f16(std::uniform_real_distribution<float>(0.001f, 0.01f)(rng));
  for (int64_t i = 0; i < k; ++i) g_idx[std::size_t(i)] = int32_t(i / group);
  std::shuffle(g_idx.begin(), g_idx.end(), rng);
  return pagedinfer::import_gptq(qweight.data(), qzeros.data(), scales.data(), g_idx.data(), n, k, bits, group);
}

// Asserts that f throws pagedinfer::Error whose message contains every one of `words`.
inline void expect_error(const std::function<void()>& f, std::initializer_list<const char*> words) {
  try {
    f();
    ADD_FAILURE() << "no error thrown; expected one mentioning " << *words.begin();
  } catch (const pagedinfer::Error& e) {
    for (const char* w : words) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
  }
}

}  // namespace testutil
