// KV-cache operations: append by slot mapping, copy blocks, gather / scatter across layouts.
#include <gtest/gtest.h>

#include "test_util.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

constexpr Layout kLayouts[] = {Layout::nhd, Layout::hnd, Layout::combined_nhd, Layout::combined_hnd};

int32_t dv_of(Layout l, int32_t dk) { return l == Layout::combined_nhd || l == Layout::combined_hnd ? dk : dk + 16; }

TEST(KvCache, AppendWritesEachTokenToItsSlotAndSkipsNegativeSlots) {
  for (Layout layout : kLayouts)
    for (DType cache_t : {DType::f32, DType::bf16, DType::f16})
      for (DType src_t : {DType::f32, DType::bf16}) {
        SCOPED_TRACE(std::string(layout_name(layout)) + " cache " + dtype_name(cache_t) + " src " + dtype_name(src_t));
        const int32_t pages = 6, ps = 5, heads = 3, dk = 24, dv = dv_of(layout, dk), tokens = 9;
        Pool pool(layout, cache_t, pages, ps, heads, dk, dv);
        pool.k.fill(-3.f);
        if (pool.v.n) pool.v.fill(-3.f);
        std::mt19937 rng(11);
        // Source rows are strided as in a fused QKV buffer: [tokens, heads, stride 40].
        Buffer key(src_t, tokens * heads * 40), value(src_t, tokens * heads * 40);
        key.fill_uniform(rng, -2, 2);
        value.fill_uniform(rng, -2, 2);
        std::vector<int64_t> slots = {0, 29, 7, -1, 13, 4, -5, 22, 15};
        for (int threads : {1, 2}) {
          append_kv({pool.view, {key.data(), src_t, heads * 40, 40}, {value.data(), src_t, heads * 40, 40}, slots.data(),
                    tokens, threads});
          for (int32_t i = 0; i < tokens; ++i) {
            if (slots[i] < 0) continue;
            const int64_t page = slots[i] / ps;
            const int32_t off = int32_t(slots[i] % ps);
            for (int32_t h = 0; h < heads; ++h) {
              for (int32_t d = 0; d < dk; ++d) {
                float want = key.get(std::size_t(i) * heads * 40 + h * 40 + d);
                convert(&want, DType::f32, &want, DType::f32, 1);
                Buffer one(cache_t, 1);
                one.set(0, want);
                ASSERT_EQ(pool.at(0, page, off, h, d), one.get(0));
              }
              for (int32_t d = 0; d < dv; ++d) {
                Buffer one(cache_t, 1);
                one.set(0, value.get(std::size_t(i) * heads * 40 + h * 40 + d));
                ASSERT_EQ(pool.at(1, page, off, h, d), one.get(0));
              }
            }
          }
        }
        // Slots that no token names keep their old contents.
        ASSERT_EQ(pool.at(0, 0, 1, 0, 0), -3.f);
        ASSERT_EQ(pool.at(1, 5, 3, 2, dv - 1), -3.f);  // slot 28
      }
}

TEST(KvCache, CopyBlocksCopiesWholePagesOfKAndV) {
  for (Layout layout : kLayouts) {
    SCOPED_TRACE(layout_name(layout));
    const int32_t pages = 10, ps = 4, heads = 2, dk = 16, dv = dv_of(layout, dk);
    Pool pool(layout, DType::bf16, pages, ps, heads, dk, dv);
    std::mt19937 rng(5);
    pool.k.fill_uniform(rng, -1, 1);
    if (pool.v.n) pool.v.fill_uniform(rng, -1, 1);
    Pool before = pool;  // deep copy of the storage (views still point at pool's)
    const std::vector<int32_t> pairs = {3, 7, 3, 8, 0, 9};  // 3 -> 7 and 8 (prefix sharing), 0 -> 9
    copy_blocks({pool.view, pairs.data(), 3, 2});
    auto expect_page = [&](int32_t dst, int32_t src) {
      for (int32_t t = 0; t < ps; ++t)
        for (int32_t h = 0; h < heads; ++h) {
          for (int32_t d = 0; d < dk; ++d) ASSERT_EQ(pool.at(0, dst, t, h, d), pool.at(0, src, t, h, d));
          for (int32_t d = 0; d < dv; ++d) ASSERT_EQ(pool.at(1, dst, t, h, d), pool.at(1, src, t, h, d));
        }
    };
    expect_page(7, 3);
    expect_page(8, 3);
    expect_page(9, 0);
    // Pages that were no destination are untouched.
    for (int32_t pg : {0, 1, 2, 3, 4, 5, 6})
      for (int32_t d = 0; d < dk; ++d) {
        const float b = before.k.get(std::size_t(pool.view.k.stride_page) * pg + d);
        ASSERT_EQ(pool.at(0, pg, 0, 0, d), b);
      }
  }
}

TEST(KvCache, GatherThenScatterMovesPagesBetweenLayouts) {
  // A prefill instance (NHD) exports pages; a decode instance (HND) imports them elsewhere.
  for (DType t : {DType::f32, DType::bf16, DType::f16})
    for (Layout from : kLayouts)
      for (Layout to : kLayouts) {
        const bool from_combined = from == Layout::combined_nhd || from == Layout::combined_hnd;
        const bool to_combined = to == Layout::combined_nhd || to == Layout::combined_hnd;
        if (from_combined != to_combined) continue;  // combined pools have dk == dv
        SCOPED_TRACE(std::string(layout_name(from)) + " -> " + layout_name(to) + " " + dtype_name(t));
        const int32_t ps = 3, heads = 2, dk = 8, dv = dv_of(from, dk);
        Pool a(from, t, 7, ps, heads, dk, dv), b(to, t, 9, ps, heads, dk, dv);
        std::mt19937 rng(9);
        a.k.fill_uniform(rng, -1, 1);
        if (a.v.n) a.v.fill_uniform(rng, -1, 1);
        const std::vector<int32_t> src = {5, 0, 2}, dst = {8, 1, 4};
        std::vector<uint8_t> flat(kv_block_bytes(a.view) * src.size());
        ASSERT_EQ(kv_block_bytes(a.view), kv_block_bytes(b.view));
        gather_blocks({a.view, src.data(), 3, flat.data(), 2});
        scatter_blocks({b.view, flat.data(), dst.data(), 3, 2});
        for (std::size_t i = 0; i < src.size(); ++i)
          for (int32_t tok = 0; tok < ps; ++tok)
            for (int32_t h = 0; h < heads; ++h) {
              for (int32_t d = 0; d < dk; ++d) ASSERT_EQ(b.at(0, dst[i], tok, h, d), a.at(0, src[i], tok, h, d));
              for (int32_t d = 0; d < dv; ++d) ASSERT_EQ(b.at(1, dst[i], tok, h, d), a.at(1, src[i], tok, h, d));
            }
      }
}

TEST(KvCacheErrors, BadArgumentsAreNamed) {
  Pool pool(Layout::nhd, DType::bf16, 4, 4, 2, 16, 16);
  Buffer key(DType::bf16, 2 * 2 * 16);
  const TokensView kv{key.data(), DType::bf16, 32, 16};
  std::vector<int64_t> slots = {0, 16};
  expect_error([&] { append_kv({pool.view, kv, kv, slots.data(), 2}); }, {"slot_mapping[1] = 16 is beyond"});
  expect_error([&] { append_kv({pool.view, kv, kv, nullptr, 2}); }, {"slot_mapping must not be null"});
  expect_error([&] { append_kv({pool.view, {nullptr, DType::bf16, 32, 16}, kv, slots.data(), 1}); },
               {"key.data must not be null"});
  expect_error([&] { append_kv({pool.view, kv, {key.data(), DType::bf16, 32, 8}, slots.data(), 1}); }, {"value strides"});
  expect_error([&] { append_kv({pool.view, kv, kv, slots.data(), 1, 0}); }, {"num_threads = 0"});
  KVCacheView bad = pool.view;
  bad.k.head_dim = 12;
  expect_error([&] { append_kv({bad, kv, kv, slots.data(), 1}); }, {"cache.k.head_dim = 12"});
  bad = pool.view;
  bad.num_kv_heads = 0;
  expect_error([&] { kv_block_bytes(bad); }, {"cache.num_kv_heads = 0"});

  std::vector<int32_t> pairs = {0, 4};
  expect_error([&] { copy_blocks({pool.view, pairs.data(), 1}); }, {"block_pairs[1] = 4 is outside the pool [0, 4)"});
  // Trust issue, findings 5, 6 and 8: the view constructors check their shape before forming a
  // pointer; thread counts are bounded; a negative pair count is named as such.
  expect_error([&] { copy_blocks({pool.view, pairs.data(), -1}); }, {"num_pairs = -1 must be >= 0"});
  expect_error([&] { copy_blocks({pool.view, pairs.data(), 0, 1 << 20}); }, {"num_threads = 1048576", "[1, 1024]"});
  std::vector<uint16_t> buf(64);
  expect_error([&] { kv_cache_combined_nhd(buf.data(), DType::bf16, 1, -2, 1, 8); }, {"kv_cache_combined_nhd", "page_size = -2"});
  expect_error([&] { kv_cache_nhd(buf.data(), buf.data(), DType::bf16, -1, 16, 1, 8, 8); }, {"num_pages = -1"});
  expect_error([&] { kv_cache_hnd(buf.data(), buf.data(), DType::bf16, 1, 16, 1, 12, 8); }, {"head dim 12"});
  expect_error([&] { kv_cache_hnd(buf.data(), buf.data(), DType::bf16, int64_t(1) << 60, 16, 8, 128, 128); }, {"overflows"});
  pairs = {0, 1, 2, 1};
  expect_error([&] { copy_blocks({pool.view, pairs.data(), 2}); }, {"destination 1 appears twice"});
  pairs = {0, 1, 1, 2};
  expect_error([&] { copy_blocks({pool.view, pairs.data(), 2}); }, {"destination 1 is also a source"});

  std::vector<uint8_t> flat(kv_block_bytes(pool.view) * 2);
  std::vector<int32_t> ids = {3, -1};
  expect_error([&] { gather_blocks({pool.view, ids.data(), 2, flat.data()}); }, {"block_ids[1] = -1"});
  expect_error([&] { gather_blocks({pool.view, ids.data(), 1, nullptr}); }, {"dst must not be null"});
  ids = {2, 2};
  expect_error([&] { scatter_blocks({pool.view, flat.data(), ids.data(), 2}); }, {"block_ids[1] = 2 appears twice"});
  expect_error([&] { gather_blocks({pool.view, ids.data(), -1, flat.data()}); }, {"block count -1"});
}

}  // namespace

// Pools for KV (and packed weights) come from HugePageAllocator: page-aligned below 2 MiB,
// 2 MiB aligned from there (advised for huge pages), and usable as a std::vector allocator.
TEST(KvCacheMemory, HugePageAllocatorAlignsPools) {
  std::vector<uint16_t, HugePageAllocator<uint16_t>> small(1000), large(std::size_t(3) << 20);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 4096, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(large.data()) % (std::size_t(2) << 20), 0u);
  large.back() = 7;  // the whole array is writable
  small.back() = 7;
  EXPECT_EQ(large.back() + small.back(), 14);
  EXPECT_THROW(HugePageAllocator<uint64_t>().allocate(std::size_t(-1) / 4), std::bad_alloc);
}

// An empty pool (no pages, null data) is a valid view; its V is null too, not an offset from
// null (found by fuzz_ops under UBSan).
TEST(KvCacheViews, EmptyCombinedPoolHasNullHalves) {
  for (auto make : {&kv_cache_combined_nhd, &kv_cache_combined_hnd}) {
    const KVCacheView v = make(nullptr, DType::bf16, 0, 16, 2, 64);
    EXPECT_EQ(v.k.data, nullptr);
    EXPECT_EQ(v.v.data, nullptr);
    const int32_t ids[1] = {0};
    testutil::expect_error([&] { gather_blocks({v, ids, 1, nullptr}); }, {"gather_blocks"});
  }
}

namespace {

// MLA's latent cache: V is the leading 512 of each 576-element K row. append_kv takes K only,
// copy_blocks and the flat page format carry K only, and V always reads what K holds.
TEST(KvCacheLatent, KCarriesV) {
  const int32_t ps = 4, dk = 576, dv = 512;
  Pool a(Layout::latent, DType::bf16, 6, ps, 1, dk, dv), b(Layout::latent, DType::bf16, 8, ps, 1, dk, dv);
  EXPECT_EQ(a.view.v.data, a.view.k.data);
  EXPECT_EQ(kv_block_bytes(a.view), std::size_t(ps) * dk * 2);
  std::mt19937 rng(4);
  Buffer key(DType::f32, 3 * dk);
  key.fill_uniform(rng, -1, 1);
  const std::vector<int64_t> slots = {5, -1, 22};
  append_kv({a.view, {key.data(), DType::f32, dk, dk}, TokensView{}, slots.data(), 3, 2});
  for (int64_t i : {0, 2})
    for (int32_t d = 0; d < dk; ++d) {
      const float k = a.at(0, slots[std::size_t(i)] / ps, int32_t(slots[std::size_t(i)] % ps), 0, d);
      ASSERT_EQ(float_to_bf16(k), float_to_bf16(key.get(std::size_t(i * dk + d)))) << "d " << d;
      if (d < dv) ASSERT_EQ(a.at(1, slots[std::size_t(i)] / ps, int32_t(slots[std::size_t(i)] % ps), 0, d), k);
    }
  expect_error([&] { append_kv({a.view, {key.data(), DType::f32, dk, dk}, {key.data(), DType::f32, dk, dk}, slots.data(), 3, 1}); },
               {"append_kv", "value must be null", "leading head_dim_v = 512 elements of K"});
  const std::vector<int32_t> pairs = {1, 3};
  copy_blocks({a.view, pairs.data(), 1, 1});
  std::vector<uint8_t> flat(kv_block_bytes(a.view) * 2);
  const std::vector<int32_t> src = {1, 5}, dst = {7, 0};
  gather_blocks({a.view, src.data(), 2, flat.data(), 2});
  scatter_blocks({b.view, flat.data(), dst.data(), 2, 2});
  for (int32_t tok = 0; tok < ps; ++tok)
    for (int32_t d = 0; d < dk; ++d) {
      ASSERT_EQ(a.at(0, 3, tok, 0, d), a.at(0, 1, tok, 0, d));
      for (int i = 0; i < 2; ++i) ASSERT_EQ(b.at(0, dst[std::size_t(i)], tok, 0, d), a.at(0, src[std::size_t(i)], tok, 0, d));
    }
  expect_error([&] { kv_cache_mla(a.k.data(), DType::bf16, 6, ps, 512, 576); }, {"kv_cache_mla", "head_dim_v = 576"});
}

}  // namespace
