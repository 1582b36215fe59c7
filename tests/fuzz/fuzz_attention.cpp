// An attention problem decoded from the input: sizes, indptrs, page tables (padded or CSR, ids
// possibly outside the pool), layouts, strides, flags, custom masks and thread counts, with
// every buffer sized exactly as the description implies. What validation accepts must run in bounds and agree with
// the reference.
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace pagedinfer;
  FuzzedDataProvider in(data, size);
  const int32_t hkv = in.ConsumeIntegralInRange<int32_t>(1, 3);
  const int32_t hq = hkv * in.ConsumeIntegralInRange<int32_t>(1, 3) + (in.ConsumeIntegralInRange<int>(0, 15) == 0);
  const int32_t dq = 8 * in.ConsumeIntegralInRange<int32_t>(1, 4) - (in.ConsumeIntegralInRange<int>(0, 15) == 0);
  const int32_t dv = 8 * in.ConsumeIntegralInRange<int32_t>(1, 4);
  const int32_t page = in.ConsumeIntegralInRange<int32_t>(1, 8);
  const int64_t num_pages = in.ConsumeIntegralInRange<int64_t>(0, 12);
  const DType qt = fuzz::any_dtype(in), kvt = fuzz::kv_dtype(in), ot = fuzz::any_dtype(in);
  const bool hnd = in.ConsumeBool(), csr = in.ConsumeBool();
  const int32_t num_reqs = in.ConsumeIntegralInRange<int32_t>(0, 4);
  std::vector<int32_t> q_indptr{0}, kv_len, block_table, page_indptr{0}, page_indices;
  const int32_t cols = in.ConsumeIntegralInRange<int32_t>(0, 8);
  for (int32_t r = 0; r < num_reqs; ++r) {
    kv_len.push_back(in.ConsumeIntegralInRange<int32_t>(-1, 50));
    q_indptr.push_back(q_indptr.back() + in.ConsumeIntegralInRange<int32_t>(0, std::max(1, kv_len.back() + 1)));
    const int32_t pages = in.ConsumeIntegralInRange<int32_t>(0, 8);
    for (int32_t i = 0; i < cols; ++i) block_table.push_back(in.ConsumeIntegralInRange<int32_t>(-1, int32_t(num_pages)));
    for (int32_t i = 0; i < pages; ++i) page_indices.push_back(in.ConsumeIntegralInRange<int32_t>(-1, int32_t(num_pages)));
    page_indptr.push_back(page_indptr.back() + pages);
  }
  if (num_reqs > 0 && in.ConsumeIntegralInRange<int>(0, 15) == 0) {  // a corrupt indptr entry
    const auto r = std::size_t(in.ConsumeIntegralInRange<int32_t>(0, num_reqs));
    (in.ConsumeBool() ? q_indptr : page_indptr)[r] += in.ConsumeIntegralInRange<int32_t>(-3, 3);
  }
  // q and out hold q_indptr[num_reqs] tokens and page_indices page_indptr[num_reqs] ids, as the
  // contract says they must (a corrupt middle entry must be caught; the last one is the caller's
  // statement of the size).
  page_indices.resize(std::size_t(std::max(0, page_indptr.back())), 0);
  const int64_t tokens = std::max(0, q_indptr.back());
  // Pools with exact sizes; strides from the layout plus optional padding of the token rows.
  const int64_t pad = in.ConsumeIntegralInRange<int64_t>(0, 2) * 8;
  auto pool = [&](int32_t d, fuzz::Buffer& buf) {
    PagePool p;
    p.data = buf.data();
    p.head_dim = d;
    if (hnd) {
      p.stride_token = d + pad;
      p.stride_head = page * p.stride_token;
      p.stride_page = hkv * p.stride_head;
    } else {
      p.stride_head = d + pad;
      p.stride_token = hkv * p.stride_head;
      p.stride_page = page * p.stride_token;
    }
    return p;
  };
  fuzz::Buffer kbuf(std::size_t(num_pages * page * hkv * (dq + pad)), kvt, &in);
  fuzz::Buffer vbuf(std::size_t(num_pages * page * hkv * (dv + pad)), kvt, &in);
  fuzz::Buffer q(std::size_t(tokens * hq * dq), qt, &in);
  fuzz::Buffer out(std::size_t(tokens * hq * dv), ot), ref(std::size_t(tokens * hq * dv), DType::f32);
  std::vector<float> lse(std::size_t(tokens * hq)), ref_lse(lse.size());
  std::vector<float> slopes(static_cast<std::size_t>(hq)), sinks(static_cast<std::size_t>(hq));
  for (float& s : slopes) s = in.ConsumeFloatingPointInRange(0.f, 1.f);
  for (float& s : sinks) s = in.ConsumeFloatingPointInRange(-2.f, 2.f);

  AttentionProblem pr;
  pr.num_reqs = num_reqs;
  pr.q_indptr = q_indptr.data();
  pr.kv_len = kv_len.data();
  pr.num_q_heads = hq;
  pr.num_kv_heads = hkv;
  pr.head_dim_qk = dq;
  pr.head_dim_v = dv;
  pr.num_threads = in.ConsumeIntegralInRange<int>(1, 2);
  pr.kv_chunk = in.ConsumeIntegralInRange<int32_t>(-1, 16);
  AttentionPlan plan;
  if (!fuzz::accepted([&] { plan = plan_attention(pr); })) return 0;
  fuzz::Bytes ws(plan.workspace_bytes);

  AttentionParams p;
  p.q = {q.data(), qt, int64_t(hq) * dq, dq};
  p.q_indptr = q_indptr.data();
  p.num_q_heads = hq;
  p.cache.k = pool(dq, kbuf);
  p.cache.v = pool(dv, vbuf);
  p.cache.dtype = kvt;
  // Scales of a quantized cache: fp8 per tensor (sometimes not > 0), int8 per row (sometimes absent).
  p.cache.k_scale = in.ConsumeFloatingPointInRange(-0.05f, 1.f);
  p.cache.v_scale = in.ConsumeFloatingPointInRange(-0.05f, 1.f);
  std::vector<float> kscales(std::size_t(num_pages * page * hkv)), vscales(kscales.size());
  for (float& x : kscales) x = in.ConsumeFloatingPointInRange(0.f, 1.f / 32);
  for (float& x : vscales) x = in.ConsumeFloatingPointInRange(0.f, 1.f / 32);
  for (auto [pool, scales] : {std::pair{&p.cache.k, &kscales}, std::pair{&p.cache.v, &vscales}}) {
    pool->scale = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? nullptr : scales->data();
    pool->scale_stride_page = int64_t(page) * hkv;
    pool->scale_stride_token = hnd ? 1 : hkv;
    pool->scale_stride_head = hnd ? page : 1;
  }
  p.cache.num_pages = num_pages;
  p.cache.page_size = page;
  p.cache.num_kv_heads = hkv;
  p.pages.num_reqs = num_reqs;
  p.pages.kv_len = kv_len.data();
  if (csr) {
    p.pages.page_indptr = page_indptr.data();
    p.pages.page_indices = page_indices.data();
  } else {
    p.pages.block_table = block_table.data();
    p.pages.block_table_cols = cols;
  }
  p.out = {out.data(), ot, int64_t(hq) * dv, dv};
  p.lse = in.ConsumeBool() ? lse.data() : nullptr;
  p.scale = in.ConsumeFloatingPointInRange(0.05f, 1.f);
  p.causal = in.ConsumeBool();
  p.window_left = in.ConsumeIntegralInRange<int32_t>(-1, 20);
  p.window_right = in.ConsumeIntegralInRange<int32_t>(-1, 20);
  p.softcap = in.ConsumeBool() ? in.ConsumeFloatingPointInRange(0.f, 50.f) : 0.f;
  p.alibi_slopes = in.ConsumeBool() ? slopes.data() : nullptr;
  p.sinks = in.ConsumeBool() ? sinks.data() : nullptr;
  // A custom mask: segments sized as the requests need (or one of them off by a little), the
  // bytes exactly mask_indptr[num_reqs] long.
  std::vector<int64_t> mask_indptr{0};
  std::vector<uint8_t> mask;
  if (in.ConsumeBool()) {
    p.mask_packed = in.ConsumeBool();
    for (int32_t r = 0; r < num_reqs; ++r) {
      const int64_t n = int64_t(std::max(0, q_indptr[r + 1] - q_indptr[r])) * std::max(0, kv_len[r]);
      const int64_t off = in.ConsumeIntegralInRange<int>(0, 15) == 0 ? in.ConsumeIntegralInRange<int64_t>(-2, 2) : 0;
      mask_indptr.push_back(mask_indptr.back() + std::max<int64_t>(0, (p.mask_packed ? (n + 7) / 8 : n) + off));
    }
    for (int64_t i = 0; i < mask_indptr.back(); ++i) mask.push_back(in.ConsumeIntegral<uint8_t>());
    p.custom_mask = mask.data();
    p.mask_indptr = mask_indptr.data();
  }
  p.workspace = ws.data();
  p.workspace_bytes = plan.workspace_bytes;
  if (!fuzz::accepted([&] { paged_attention(plan, p); })) return 0;

  // Accepted by the kernel: the reference accepts it too and agrees.
  p.out = {ref.data(), DType::f32, int64_t(hq) * dv, dv};
  if (p.lse) p.lse = ref_lse.data();
  reference::paged_attention(p);
  for (std::size_t i = 0; i < ref.size(); ++i) fuzz::expect_close(out.at(i), ref.at(i), 0.02, "attention out");
  if (p.lse)
    for (std::size_t i = 0; i < lse.size(); ++i)
      fuzz::expect_close(lse[i], ref_lse[i], 1e-3 * (1 + std::fabs(ref_lse[i])), "attention lse");
  return 0;
}
