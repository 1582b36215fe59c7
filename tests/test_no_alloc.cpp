// Run paths allocate nothing (DESIGN.md: plan once, run many; kernels never allocate): a replaced
// global operator new counts allocations while paged_attention, linear, apply_rope, rms_norm and
// append_kv run, after one warm-up call of each (which may set up process-wide state once). Every
// form of new and delete goes to malloc / free, so that the library's own calls pair up. Not
// built under AddressSanitizer, which replaces them itself (tests/CMakeLists.txt).
#include <atomic>
#include <cstdlib>
#include <new>

#include "test_util.hpp"

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace pagedinfer;
using testutil::Buffer;

// Allocations made by f's second call (the first warms up).
template <class F>
long allocations_of(F&& f) {
  f();
  allocations = 0;
  counting = true;
  f();
  counting = false;
  return allocations.load();
}

TEST(NoAllocation, TheCounterSeesAnAllocation) {
  EXPECT_EQ(allocations_of([] {
              std::vector<int> v(10);
              asm volatile("" : : "r"(v.data()) : "memory");
            }),
            1);
}

TEST(NoAllocation, RunPathsOfEveryOp) {
  std::mt19937 rng(1);
  // Attention over a paged bf16 cache, two threads.
  const int32_t heads = 8, kv_heads = 2, dim = 64, page = 16, pages = 8;
  std::vector<int32_t> q_indptr{0, 1, 5}, kv_len{20, 30}, table{3, 1, 0, 6, 2, 5};
  Buffer k(DType::bf16, size_t(pages) * page * kv_heads * dim), v(DType::bf16, k.n);
  Buffer q(DType::bf16, 5 * heads * dim), out(DType::bf16, q.n);
  k.fill_uniform(rng, -1, 1);
  v.fill_uniform(rng, -1, 1);
  q.fill_uniform(rng, -1, 1);
  AttentionProblem pr;
  pr.num_reqs = 2;
  pr.q_indptr = q_indptr.data();
  pr.kv_len = kv_len.data();
  pr.num_q_heads = heads;
  pr.num_kv_heads = kv_heads;
  pr.head_dim_qk = pr.head_dim_v = dim;
  pr.num_threads = 2;
  const AttentionPlan plan = plan_attention(pr);
  Buffer ws(DType::f32, plan.workspace_bytes / 4 + 16);
  AttentionParams ap;
  ap.q = {q.data(), DType::bf16, heads * dim, dim};
  ap.q_indptr = q_indptr.data();
  ap.num_q_heads = heads;
  ap.cache = kv_cache_nhd(k.data(), v.data(), DType::bf16, pages, page, kv_heads, dim, dim);
  ap.pages = {2, kv_len.data(), table.data(), 3, nullptr, nullptr};
  ap.out = {out.data(), DType::bf16, heads * dim, dim};
  ap.workspace = ws.data();
  ap.workspace_bytes = plan.workspace_bytes;
  EXPECT_EQ(allocations_of([&] { paged_attention(plan, ap); }), 0);

  // append_kv and the fused RoPE + append.
  std::vector<int64_t> slots{7, 40, -1, 99, 12};
  Buffer key(DType::bf16, 5 * kv_heads * dim), val(DType::bf16, key.n);
  key.fill_uniform(rng, -1, 1);
  val.fill_uniform(rng, -1, 1);
  const TokensView kt{key.data(), DType::bf16, kv_heads * dim, dim}, vt{val.data(), DType::bf16, kv_heads * dim, dim};
  EXPECT_EQ(allocations_of([&] { append_kv({ap.cache, kt, vt, slots.data(), 5, 2}); }), 0);
  RopeConfig rc;
  rc.rotary_dim = dim;
  rc.max_position = 128;
  const RopeCache table_cache = make_rope_cache(rc);
  std::vector<int64_t> positions{0, 5, 9, 17, 33};
  RopeParams rp;
  rp.num_tokens = 5;
  rp.positions = positions.data();
  rp.table = table_cache.table();
  rp.head_dim = dim;
  rp.num_q_heads = heads;
  rp.q = {q.data(), DType::bf16, heads * dim, dim};
  rp.num_kv_heads = kv_heads;
  rp.k = {key.data(), DType::bf16, kv_heads * dim, dim};
  rp.num_threads = 2;
  EXPECT_EQ(allocations_of([&] { apply_rope(rp); }), 0);
  EXPECT_EQ(allocations_of([&] { apply_rope_and_append_kv({rp, ap.cache, vt, slots.data()}); }), 0);

  // RMSNorm, plain and fused.
  Buffer x(DType::bf16, 4 * 512), res(DType::bf16, x.n), w(DType::bf16, 512);
  x.fill_uniform(rng, -1, 1);
  res.fill_uniform(rng, -1, 1);
  w.fill_uniform(rng, -1, 1);
  RmsNormParams np;
  np.num_tokens = 4;
  np.dim = 512;
  np.weight = w.data();
  np.input = {x.data(), DType::bf16, 512, 512};
  np.output = {x.data(), DType::bf16, 512, 512};
  np.residual = {res.data(), DType::bf16, 512, 512};
  np.num_threads = 2;
  EXPECT_EQ(allocations_of([&] { rms_norm(np); }), 0);
  EXPECT_EQ(allocations_of([&] { fused_add_rms_norm(np); }), 0);

  // linear, float and int8 activations, every kernel this CPU runs.
  std::vector<float> wf(128 * 256);
  for (float& e : wf) e = std::uniform_real_distribution<float>(-1, 1)(rng);
  const QuantizedWeight qw = quantize(wf.data(), DType::f32, 128, 256, 256, QuantFormat{4, 128, QuantZero::zero_point});
  Buffer lx(DType::bf16, 16 * 256), ly(DType::bf16, 16 * 128);
  lx.fill_uniform(rng, -1, 1);
  for (auto mode : {LinearActivations::float_, LinearActivations::int8_per_token})
    for (int64_t m : {1, 16}) {
      LinearParams lp;
      lp.m = m;
      lp.k = 256;
      lp.x = {lx.data(), DType::bf16, 256, 256};
      lp.y = {ly.data(), DType::bf16, 128, 128};
      lp.activations = mode;
      lp.num_threads = 2;
      Buffer lws(DType::f32, linear_workspace_size(qw, lp) / 4 + 16);
      lp.workspace = lws.data();
      lp.workspace_bytes = linear_workspace_size(qw, lp);
      testutil::for_each_kernel("linear", [&] { return linear_kernel_name(qw, lp); }, [&](const std::string&) {
        EXPECT_EQ(allocations_of([&] { linear(qw, lp); }), 0) << "m " << m;
      });
    }
}

}  // namespace
