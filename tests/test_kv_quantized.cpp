// Quantized KV caches (kv_cache.hpp: fp8 e4m3 / e5m2 with per-tensor scales, int8 with a scale
// per row): the fp8 conversions against a brute-force nearest search, the quantizing writes bit
// for bit against an independent scalar quantizer on every kernel, the moves carrying scales,
// and attention on every kernel against the reference over the dequantized cache.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "quantized_batch.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

constexpr DType kQuantized[] = {DType::i8, DType::f8_e4m3, DType::f8_e5m2};

// The value of an fp8 code, from the format's definition.
double f8_value(uint8_t b, bool e4m3) {
  const int ebits = e4m3 ? 4 : 5, mbits = 7 - ebits, bias = e4m3 ? 7 : 15;
  const int e = (b >> mbits) & ((1 << ebits) - 1), m = b & ((1 << mbits) - 1);
  const double sign = (b & 0x80) ? -1.0 : 1.0;
  if (e4m3 && (b & 0x7f) == 0x7f) return std::numeric_limits<double>::quiet_NaN();
  if (!e4m3 && e == 31) return m ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (e == 0) return sign * std::ldexp(double(m), 1 - bias - mbits);
  return sign * std::ldexp(1.0 + double(m) / (1 << mbits), e - bias);
}

// Nearest finite code to x by search, ties to the even code, saturating; NaN -> NaN code.
uint8_t f8_nearest(float x, bool e4m3) {
  if (std::isnan(x)) return uint8_t((std::signbit(x) ? 0x80 : 0) | (e4m3 ? 0x7f : 0x7e));
  const uint8_t sign = std::signbit(x) ? 0x80 : 0;
  const double a = std::fabs(double(x));
  if (a >= f8_value(e4m3 ? 0x7e : 0x7b, e4m3)) return uint8_t(sign | (e4m3 ? 0x7e : 0x7b));  // saturates
  uint8_t best = 0;
  double best_d = INFINITY;
  for (int c = 0; c <= (e4m3 ? 0x7e : 0x7b); ++c) {
    const double d = std::fabs(f8_value(uint8_t(c), e4m3) - a);
    if (d < best_d || (d == best_d && c % 2 == 0)) best = uint8_t(c), best_d = d;
  }
  return uint8_t(sign | best);
}

TEST(Fp8, DecodesEveryCodeExactly) {
  for (int c = 0; c < 256; ++c) {
    const double e4 = f8_value(uint8_t(c), true), e5 = f8_value(uint8_t(c), false);
    const float g4 = f8_e4m3_to_float(uint8_t(c)), g5 = f8_e5m2_to_float(uint8_t(c));
    if (std::isnan(e4)) EXPECT_TRUE(std::isnan(g4)) << c;
    else EXPECT_EQ(double(g4), e4) << "e4m3 code " << c;
    if (std::isnan(e5)) EXPECT_TRUE(std::isnan(g5)) << c;
    else EXPECT_EQ(double(g5), e5) << "e5m2 code " << c;
  }
}

TEST(Fp8, EncodesToTheNearestCodeTiesToEvenSaturating) {
  std::vector<float> xs = {0.f, -0.f, INFINITY, -INFINITY, NAN, 448.f, 464.f, 479.f, 1e6f, 57344.f, 61439.f, 1e-30f};
  for (int c = 0; c < 127; ++c)  // every code, the midpoints to the next one, and just off them
    for (bool e4m3 : {true, false}) {
      const double a = f8_value(uint8_t(c), e4m3), b = f8_value(uint8_t(c + 1), e4m3);
      if (std::isnan(b) || std::isinf(b)) continue;
      for (double x : {a, (a + b) / 2}) {
        xs.push_back(float(x));
        xs.push_back(std::nextafter(float(x), 0.f));
        xs.push_back(std::nextafter(float(x), INFINITY));
      }
    }
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) xs.push_back(std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng), int(rng() % 40) - 24));
  for (float x : xs)
    for (float s : {x, -x}) {
      EXPECT_EQ(float_to_f8_e4m3(s), f8_nearest(s, true)) << "e4m3 of " << s;
      EXPECT_EQ(float_to_f8_e5m2(s), f8_nearest(s, false)) << "e5m2 of " << s;
    }
}

// The quantization kv_cache.hpp states, scalar: codes and the row's scale.
float expected_row(DType kv, const float* x, int32_t n, float tensor_scale, uint8_t* codes) {
  if (kv != DType::i8) {
    for (int32_t i = 0; i < n; ++i)
      codes[i] = kv == DType::f8_e4m3 ? float_to_f8_e4m3(x[i] / tensor_scale) : float_to_f8_e5m2(x[i] / tensor_scale);
    return tensor_scale;
  }
  float amax = 0.f;
  bool finite = true;
  for (int32_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i])), finite = finite && std::isfinite(x[i]);
  if (!finite || amax == 0.f) {
    std::fill(codes, codes + n, 0);
    return finite ? 0.f : NAN;
  }
  const float s = amax / 127.f;
  for (int32_t i = 0; i < n; ++i) codes[i] = uint8_t(int8_t(std::max(-127.f, std::min(127.f, std::nearbyint(x[i] / s)))));
  return s;
}

bool same_scale(float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }

// Rows of a few kinds: random of several magnitudes, zeros, one huge value, subnormal ones,
// and rows holding an infinity or NaN.
std::vector<std::vector<float>> test_rows(int32_t n, std::mt19937& rng) {
  std::vector<std::vector<float>> rows;
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (float mag : {1.f, 300.f, 1e-3f, 1e-7f}) {
    std::vector<float> r(static_cast<std::size_t>(n));
    for (float& x : r) x = u(rng) * mag;
    rows.push_back(r);
  }
  rows.push_back(std::vector<float>(std::size_t(n), 0.f));
  rows.push_back(rows[0]);
  rows.back()[std::size_t(n / 2)] = 1e5f;
  rows.push_back(rows[0]);
  rows.back()[std::size_t(n - 1)] = INFINITY;
  rows.push_back(rows[0]);
  rows.back()[0] = NAN;
  return rows;
}

}  // namespace

// Through append_kv (one token, one head of n values, fp32 source) with each kernel forced.
TEST(QuantizeKv, EveryKernelQuantizesRowsBitForBit) {
  std::mt19937 rng(3);
  for (DType kv : kQuantized)
    for_each_kernel("quantize_kv", [&] { return quantize_kv_kernel_name(kv); }, [&](const std::string&) {
      for (int32_t n : {8, 24, 64, 72, 128, 136, 576, 1024})
        for (const auto& row : test_rows(n, rng)) {
          Pool pool(Layout::nhd, kv, 1, 1, 1, n, n);
          pool.view.k_scale = pool.view.v_scale = 0.05f;
          AppendKvParams p;
          p.cache = pool.view;
          p.key = {row.data(), DType::f32, n, n};
          p.value = p.key;
          const int64_t slot = 0;
          p.slot_mapping = &slot;
          p.num_tokens = 1;
          append_kv(p);
          std::vector<uint8_t> want(static_cast<std::size_t>(n));
          const float ws = expected_row(kv, row.data(), n, 0.05f, want.data());
          const auto* got = static_cast<const uint8_t*>(pool.view.k.data);
          ASSERT_EQ(std::vector<uint8_t>(got, got + n), want) << dtype_name(kv) << " n " << n;
          if (kv == DType::i8)
            ASSERT_TRUE(same_scale(pool.view.k.scale[0], ws)) << "n " << n << ": scale " << pool.view.k.scale[0] << " vs " << ws;
        }
    });
}


// Gathered from one layout and scattered into another, and copied within a cache, pages keep
// their values and scales.
TEST(QuantizedKv, PagesMoveWithTheirScales) {
  for (DType kv : kQuantized) {
    SCOPED_TRACE(dtype_name(kv));
    QuantizedBatch a(kv, Layout::nhd, {40, 7}, 2, 64, 32, 16);
    Pool other(Layout::hnd, kv, a.pool.view.num_pages, 16, 2, 64, 32);
    other.view.k_scale = a.pool.view.k_scale;
    other.view.v_scale = a.pool.view.v_scale;
    const int64_t n = a.pool.view.num_pages;
    std::vector<int32_t> ids(static_cast<std::size_t>(n));
    std::iota(ids.begin(), ids.end(), 0);
    std::vector<uint8_t> flat(std::size_t(n) * kv_block_bytes(a.pool.view));
    ASSERT_EQ(kv_block_bytes(a.pool.view), std::size_t(16 * 2 * (64 + 32)) + (kv == DType::i8 ? 16 * 2 * 8 : 0));
    gather_blocks({a.pool.view, ids.data(), n, flat.data(), 2});
    scatter_blocks({other.view, flat.data(), ids.data(), n, 2});
    QuantizedBatch b(kv, Layout::hnd, {40, 7}, 2, 64, 32, 16);  // b.at reads `other` through its view
    b.pool.view = other.view;
    std::vector<int32_t> pairs = {a.pages.page_indices[0], 0};  // to a page no request uses
    while (std::count(a.pages.page_indices.begin(), a.pages.page_indices.end(), pairs[1])) ++pairs[1];
    copy_blocks({b.pool.view, pairs.data(), 1, 1});
    for (std::size_t r = 0; r < a.kv_len.size(); ++r)
      for (int32_t j = 0; j < a.kv_len[r]; ++j) {
        const int64_t pg = a.pages.page_indices[std::size_t(a.pages.page_indptr[r] + j / 16)];
        for (int32_t h = 0; h < 2; ++h)
          for (int32_t d = 0; d < 64; ++d) {
            ASSERT_EQ(a.at(false, pg, j % 16, h, d), b.at(false, pg, j % 16, h, d)) << "page " << pg;
            if (d < 32) ASSERT_EQ(a.at(true, pg, j % 16, h, d), b.at(true, pg, j % 16, h, d));
            if (pg == pairs[0]) ASSERT_EQ(a.at(false, pg, j % 16, h, d), b.at(false, pairs[1], j % 16, h, d));
          }
      }
  }
}

// The fused RoPE append quantizes exactly the rows that apply_rope then append_kv write from
// fp32 (the fused path rotates into fp32 and rounds once, when quantizing).
TEST(QuantizedKv, FusedRopeAppendEqualsRopeThenAppend) {
  RopeConfig rc;
  rc.rotary_dim = 64;
  rc.max_position = 64;
  const RopeCache table = make_rope_cache(rc);
  for (DType kv : kQuantized)
    for (DType x : {DType::f32, DType::bf16})
      for_each_kernel("quantize_kv", [&] { return quantize_kv_kernel_name(kv); }, [&](const std::string&) {
        const int64_t n = 9;
        const int32_t heads = 2, d = 128;
        std::mt19937 rng(5);
        Buffer q(x, std::size_t(n * 4 * d)), k(x, std::size_t(n * heads * d)), v(x, std::size_t(n * heads * d));
        q.fill_uniform(rng, -2.f, 2.f);
        k.fill_uniform(rng, -2.f, 2.f);
        v.fill_uniform(rng, -2.f, 2.f);
        std::vector<int64_t> pos(static_cast<std::size_t>(n)), slots(static_cast<std::size_t>(n));
        for (int64_t i = 0; i < n; ++i) pos[std::size_t(i)] = 3 * i, slots[std::size_t(i)] = (i * 5) % 16;
        slots[4] = -1;
        Pool fused(Layout::nhd, kv, 2, 8, heads, d, d), split(Layout::nhd, kv, 2, 8, heads, d, d);
        for (Pool* p : {&fused, &split}) p->view.k_scale = 0.01f, p->view.v_scale = 0.02f;
        RopeParams rp;
        rp.num_tokens = n;
        rp.positions = pos.data();
        rp.table = table.table();
        rp.head_dim = d;
        rp.num_kv_heads = heads;
        rp.k = {k.data(), x, int64_t(heads) * d, d};
        RopeAppendKvParams fp;
        fp.rope = rp;
        fp.cache = fused.view;
        fp.value = {v.data(), x, int64_t(heads) * d, d};
        fp.slot_mapping = slots.data();
        apply_rope_and_append_kv(fp);
        Buffer k32(DType::f32, k.n);
        convert(k.data(), x, k32.data(), DType::f32, k.n);
        rp.k = {k32.data(), DType::f32, int64_t(heads) * d, d};
        apply_rope(rp);  // k rotated in place, then appended
        AppendKvParams ap;
        ap.cache = split.view;
        ap.key = rp.k;
        ap.value = fp.value;
        ap.slot_mapping = slots.data();
        ap.num_tokens = n;
        append_kv(ap);
        ASSERT_EQ(0, std::memcmp(fused.k.data(), split.k.data(), fused.k.bytes()));
        ASSERT_EQ(0, std::memcmp(fused.v.data(), split.v.data(), fused.v.bytes()));
      });
}

// A transfer of an i8 cache carries its row scales; one of an fp8 cache, its scales, which a
// receiver with other scales refuses.
TEST(QuantizedKv, TransfersCarryScales) {
  for (DType kv : kQuantized) {
    SCOPED_TRACE(dtype_name(kv));
    QuantizedBatch a(kv, Layout::nhd, {40}, 2, 64, 64, 16);
    const int32_t n = 3;
    std::vector<int32_t> src_ids(a.pages.page_indices.begin(), a.pages.page_indices.begin() + n), dst_ids = {5, 0, 2};
    ExportKVParams ep;
    ep.caches = &a.pool.view;
    ep.num_layers = 1;
    ep.block_ids = src_ids.data();
    ep.num_tokens = 40;
    std::vector<uint8_t> data(kv_transfer_bytes(a.pool.view, 1, 40));
    ep.dst = data.data();
    ep.dst_bytes = data.size();
    export_kv(ep);
    EXPECT_EQ(read_kv_transfer(data.data(), data.size()).k_scale, kv == DType::i8 ? 1.f : a.pool.view.k_scale);
    QuantizedBatch b(kv, Layout::hnd, {8, 8, 8, 8}, 2, 64, 64, 16);  // 4 + 3 pages
    ImportKVParams ip;
    ip.caches = &b.pool.view;
    ip.num_layers = 1;
    ip.src = data.data();
    ip.src_bytes = data.size();
    ip.block_ids = dst_ids.data();
    ip.num_blocks = n;
    import_kv(ip);
    for (int32_t j = 0; j < 40; ++j)
      for (int32_t h = 0; h < 2; ++h)
        for (int32_t d = 0; d < 64; ++d)
          for (bool v : {false, true})
            ASSERT_EQ(a.at(v, src_ids[std::size_t(j / 16)], j % 16, h, d), b.at(v, dst_ids[std::size_t(j / 16)], j % 16, h, d));
    if (kv == DType::i8) continue;
    b.pool.view.v_scale *= 2;
    expect_error([&] { import_kv(ip); }, {"import_kv", "fp8 scales", "misread"});
  }
}

TEST(QuantizedKv, BadInputIsRefusedByName) {
  Pool i8(Layout::nhd, DType::i8, 2, 16, 2, 64, 64), f8(Layout::nhd, DType::f8_e4m3, 2, 16, 2, 64, 64);
  std::vector<float> row(2 * 64, 1.f);
  const int64_t slot = 3;
  AppendKvParams p;
  p.key = p.value = {row.data(), DType::f32, 128, 64};
  p.slot_mapping = &slot;
  p.num_tokens = 1;
  p.cache = i8.view;
  p.cache.v.scale = nullptr;
  expect_error([&] { append_kv(p); }, {"append_kv", "cache.v.scale", "must not be null"});
  p.cache = i8.view;
  p.cache.k.scale = reinterpret_cast<float*>(reinterpret_cast<char*>(p.cache.k.scale) + 2);
  expect_error([&] { append_kv(p); }, {"cache.k.scale", "aligned to 4"});
  p.cache = i8.view;
  p.cache.k.scale_stride_token = 0;
  expect_error([&] { append_kv(p); }, {"cache.k scale strides", "positive"});
  for (float bad : {0.f, -1.f, NAN, INFINITY}) {
    p.cache = f8.view;
    p.cache.k_scale = bad;
    expect_error([&] { append_kv(p); }, {"append_kv", "cache.k_scale", "finite and > 0"});
  }
  p.cache = f8.view;
  p.key.dtype = DType::i8;
  expect_error([&] { append_kv(p); }, {"key.dtype must be f32, bf16 or f16"});
  std::vector<uint8_t> b(8);
  expect_error([&] { convert(b.data(), DType::f8_e4m3, row.data(), DType::f32, 4); }, {"convert", "src_type"});
}
