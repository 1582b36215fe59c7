// The KV transfer format: a sequence's pages of every layer move between pools of any layout and
// dtype; every truncation, every flipped bit and every mismatch between transfer and receiver
// is refused with an Error that names the rule, and the receiving pool is left untouched.
#include "test_util.hpp"

namespace {

using namespace pagedinfer;
using testutil::expect_error;
using testutil::Layout;
using testutil::Pool;

constexpr int32_t kLayers = 3, kHeads = 2, kDim = 16;

// One pool per layer, filled with distinct values.
struct Model {
  std::vector<Pool> pools;
  std::vector<KVCacheView> views;
  Model(Layout layout, DType t, int64_t pages, int32_t page_size, uint32_t seed, int32_t heads = kHeads,
        int32_t dim = kDim) {
    std::mt19937 rng(seed);
    for (int32_t l = 0; l < kLayers; ++l) {
      pools.emplace_back(layout, t, pages, page_size, heads, dim, dim);
      pools.back().k.fill_uniform(rng, -1, 1);
      if (pools.back().v.n) pools.back().v.fill_uniform(rng, -1, 1);
    }
    for (const Pool& p : pools) views.push_back(p.view);
  }
  std::vector<uint8_t> bytes() const {
    std::vector<uint8_t> out;
    for (const Pool& p : pools) {
      const auto* k = static_cast<const uint8_t*>(p.k.data());
      out.insert(out.end(), k, k + p.k.bytes());
      if (p.v.n) out.insert(out.end(), static_cast<const uint8_t*>(p.v.data()), static_cast<const uint8_t*>(p.v.data()) + p.v.bytes());
    }
    return out;
  }
};

std::vector<uint8_t> export_sequence(const Model& m, const std::vector<int32_t>& pages, int64_t tokens) {
  std::vector<uint8_t> out(kv_transfer_bytes(m.views[0], kLayers, tokens));
  export_kv({m.views.data(), kLayers, pages.data(), tokens, out.data(), out.size(), 2});
  return out;
}

TEST(KvTransfer, MovesASequenceBetweenLayoutsExactly) {
  for (DType t : {DType::f32, DType::bf16, DType::f16})
    for (Layout from : {Layout::nhd, Layout::combined_hnd})
      for (Layout to : {Layout::hnd, Layout::combined_nhd})
        for (int32_t page_size : {1, 16}) {
          SCOPED_TRACE(testing::Message() << testutil::layout_name(from) << " -> " << testutil::layout_name(to) << " "
                                          << dtype_name(t) << " page " << page_size);
          const int64_t tokens = 2 * page_size + 1;  // a partial last page
          Model a(from, t, 9, page_size, 1), b(to, t, 11, page_size, 2);
          const std::vector<int32_t> src = {7, 0, 3}, dst = {10, 4, 1};
          const std::vector<uint8_t> bytes = export_sequence(a, src, tokens);
          const KVTransferInfo info = read_kv_transfer(bytes.data(), bytes.size());
          EXPECT_EQ(info.num_tokens, tokens);
          EXPECT_EQ(info.num_pages, 3);
          EXPECT_EQ(info.num_layers, kLayers);
          EXPECT_EQ(info.dtype, t);
          import_kv({b.views.data(), kLayers, bytes.data(), bytes.size(), dst.data(), 3, 2});
          for (int32_t l = 0; l < kLayers; ++l)
            for (size_t i = 0; i < src.size(); ++i)
              for (int32_t tok = 0; tok < page_size; ++tok)
                for (int32_t h = 0; h < kHeads; ++h)
                  for (int32_t d = 0; d < kDim; ++d)
                    for (int which : {0, 1})
                      ASSERT_EQ(b.pools[size_t(l)].at(which, dst[i], tok, h, d), a.pools[size_t(l)].at(which, src[i], tok, h, d));
        }
}

TEST(KvTransfer, RefusesDamagedTransfersAndLeavesThePoolUntouched) {
  Model a(Layout::nhd, DType::bf16, 6, 4, 3), b(Layout::hnd, DType::bf16, 6, 4, 4);
  const std::vector<int32_t> src = {2, 5}, dst = {0, 3};
  const std::vector<uint8_t> good = export_sequence(a, src, 7), before = b.bytes();
  const auto import = [&](const std::vector<uint8_t>& bytes) {
    import_kv({b.views.data(), kLayers, bytes.data(), bytes.size(), dst.data(), 2, 1});
  };
  for (size_t len : {size_t(0), size_t(40), size_t(71), good.size() / 2, good.size() - 1})
    expect_error([&] { import(std::vector<uint8_t>(good.begin(), good.begin() + std::ptrdiff_t(len))); },
                 {"import_kv", "truncated"});
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  expect_error([&] { import(longer); }, {"bytes; its header implies"});
  for (size_t byte = 0; byte < good.size(); byte += 5) {  // one bit anywhere, header or pages
    std::vector<uint8_t> bad = good;
    bad[byte] ^= uint8_t(1u << (byte % 8));
    ASSERT_THROW(import(bad), Error) << "byte " << byte;
  }
  std::vector<uint8_t> bad = good;
  bad[0] = 'X';
  expect_error([&] { import(bad); }, {"bad magic"});
  bad = good;
  bad[8] = 2;
  expect_error([&] { import(bad); }, {"format version 2", "not supported"});
  bad = good;
  bad[good.size() / 2] ^= 1;
  expect_error([&] { import(bad); }, {"checksum mismatch"});
  EXPECT_EQ(b.bytes(), before);
}

TEST(KvTransfer, RefusesAReceiverOfAnotherShape) {
  Model a(Layout::nhd, DType::bf16, 6, 4, 5);
  const std::vector<int32_t> src = {1, 2}, dst = {3, 4};
  const std::vector<uint8_t> t = export_sequence(a, src, 8);
  const auto refused = [&](Model& b, int32_t layers, const std::vector<int32_t>& ids,
                           std::initializer_list<const char*> words) {
    const std::vector<uint8_t> before = b.bytes();
    expect_error([&] { import_kv({b.views.data(), layers, t.data(), t.size(), ids.data(), int64_t(ids.size()), 1}); },
                 words);
    EXPECT_EQ(b.bytes(), before);
  };
  Model f16(Layout::nhd, DType::f16, 6, 4, 6), page8(Layout::nhd, DType::bf16, 6, 8, 7),
      heads(Layout::nhd, DType::bf16, 6, 4, 8, 4), dims(Layout::nhd, DType::bf16, 6, 4, 9, kHeads, 32),
      ok(Layout::hnd, DType::bf16, 6, 4, 10);
  refused(f16, kLayers, dst, {"holds bf16", "caches are f16"});
  refused(page8, kLayers, dst, {"page_size = 4", "caches' = 8"});
  refused(heads, kLayers, dst, {"heads x dims (2 x 16 / 16)", "(4 x 16 / 16)"});
  refused(dims, kLayers, dst, {"heads x dims", "(2 x 32 / 32)"});
  refused(ok, kLayers - 1, dst, {"3 layers", "num_layers = 2"});
  refused(ok, kLayers, {3}, {"num_blocks = 1", "2 pages"});
  refused(ok, kLayers, {3, 3}, {"block_ids[1] = 3", "appears twice"});
  refused(ok, kLayers, {3, 6}, {"block_ids[1] = 6", "outside [0, 6)"});
  refused(ok, kLayers, {-1, 0}, {"block_ids[0] = -1"});
}

TEST(KvTransfer, ExportErrorsNameTheArgument) {
  Model a(Layout::nhd, DType::bf16, 6, 4, 11);
  const std::vector<int32_t> src = {1, 2};
  std::vector<uint8_t> out(kv_transfer_bytes(a.views[0], kLayers, 8));
  expect_error([&] { export_kv({a.views.data(), kLayers, src.data(), 8, out.data(), out.size() - 1, 1}); },
               {"export_kv", "dst_bytes", "smaller"});
  expect_error([&] { export_kv({a.views.data(), kLayers, src.data(), 0, out.data(), out.size(), 1}); },
               {"num_tokens = 0"});
  expect_error([&] { export_kv({a.views.data(), 0, src.data(), 8, out.data(), out.size(), 1}); }, {"num_layers = 0"});
  const std::vector<int32_t> outside = {1, 6};
  expect_error([&] { export_kv({a.views.data(), kLayers, outside.data(), 8, out.data(), out.size(), 1}); },
               {"block_ids[1] = 6"});
  Model other(Layout::nhd, DType::bf16, 6, 8, 12);
  std::vector<KVCacheView> mixed = a.views;
  mixed[2] = other.views[0];
  expect_error([&] { export_kv({mixed.data(), kLayers, src.data(), 8, out.data(), out.size(), 1}); },
               {"caches[2] differs"});
}

}  // namespace

namespace {

// A latent (MLA) cache's transfer carries K only (page_layout 1) and goes only to latent caches.
TEST(KvTransfer, LatentCachesMoveKOnly) {
  const Model a(Layout::latent, DType::bf16, 6, 4, 11, 1), b(Layout::latent, DType::bf16, 9, 4, 12, 1);
  const std::vector<int32_t> src = {4, 1, 3}, dst = {0, 8, 2};
  const std::vector<uint8_t> t = export_sequence(a, src, 10);
  EXPECT_EQ(t.size(), 64 + std::size_t(kLayers) * 3 * 4 * kDim * 2 + 8);
  EXPECT_TRUE(read_kv_transfer(t.data(), t.size()).v_in_k);
  import_kv({b.views.data(), kLayers, t.data(), t.size(), dst.data(), 3, 2});
  for (int32_t l = 0; l < kLayers; ++l)
    for (std::size_t i = 0; i < 3; ++i)
      for (int32_t tok = 0; tok < 4; ++tok)
        for (int32_t d = 0; d < kDim; ++d)
          ASSERT_EQ(b.pools[std::size_t(l)].at(0, dst[i], tok, 0, d), a.pools[std::size_t(l)].at(0, src[i], tok, 0, d));
  const Model plain(Layout::nhd, DType::bf16, 9, 4, 13, 1);
  expect_error([&] { import_kv({plain.views.data(), kLayers, t.data(), t.size(), dst.data(), 3, 1}); },
               {"import_kv", "the transfer is of a latent cache"});
}

}  // namespace
