// RoPE against the double-precision reference with every registered kernel this host runs: both styles,
// q/k dtypes, full and partial rotary dims with SIMD tails, fp32 and bf16 tables, mRoPE (both
// section orders), q-only / k-only / fused-QKV buffers, positions at the end of the table, 2
// threads, a rotated part at an offset (MLA); the fused rotate-and-append, into a latent cache
// too; table builders against independent formulas; errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "test_util.hpp"

using namespace pagedinfer;
using namespace testutil;

namespace {

constexpr double kPi = 3.14159265358979323846;

struct RopeCase {
  std::string name;
  RopeStyle style = RopeStyle::neox;
  DType x = DType::bf16, table = DType::f32;
  int32_t head_dim = 128, rotary = 128, q_heads = 8, k_heads = 2, v_heads = 2;
  int64_t tokens = 13;
  bool mrope = false, interleaved = false;
  int threads = 1;
  int32_t offset = 0;  // rotary_offset
};

// A fused QKV buffer [tokens, q_heads + k_heads + v_heads, head_dim] with a padded token stride,
// as a projection writes it; q and k are views into it.
struct Qkv {
  Buffer buf;
  int64_t stride_token;
  const RopeCase& c;
  Qkv(const RopeCase& cs, DType t, std::mt19937& rng)
      : stride_token(int64_t(cs.q_heads + cs.k_heads + cs.v_heads) * cs.head_dim + 16), c(cs) {
    buf = Buffer(t, std::size_t(cs.tokens * stride_token));
    buf.fill_uniform(rng, -3.f, 3.f);
  }
  OutTokensView q() { return {buf.data(), buf.dtype, stride_token, c.head_dim}; }
  OutTokensView k() { return {elem(c.q_heads * c.head_dim), buf.dtype, stride_token, c.head_dim}; }
  TokensView v() const {
    return {static_cast<const uint8_t*>(buf.data()) + std::size_t(c.q_heads + c.k_heads) * c.head_dim * dtype_size(buf.dtype),
            buf.dtype, stride_token, c.head_dim};
  }
  void* elem(int64_t i) { return static_cast<uint8_t*>(buf.data()) + std::size_t(i) * dtype_size(buf.dtype); }
  Qkv as(DType t) const {
    std::mt19937 unused;
    Qkv out(c, t, unused);
    for (std::size_t i = 0; i < buf.n; ++i) out.buf.set(i, buf.get(i));
    return out;
  }
};

// A table in the requested dtype from the library's fp32 builder (Llama-2 style theta).
struct Table {
  RopeCache cache;
  Buffer buf;
  Table(int32_t rotary, int64_t max_position, DType t) {
    RopeConfig cfg;
    cfg.rotary_dim = rotary;
    cfg.max_position = max_position;
    cache = make_rope_cache(cfg);
    buf = Buffer(t, cache.cos_sin.size());
    for (std::size_t i = 0; i < buf.n; ++i) buf.set(i, cache.cos_sin[i]);
  }
  RopeTable view() const { return {buf.data(), buf.dtype, cache.max_position, cache.rotary_dim}; }
};

constexpr int64_t kMaxPosition = 4096;

struct RopeInputs {
  Table table;
  std::vector<int64_t> positions;
  std::vector<int32_t> section;
  RopeInputs(const RopeCase& c, std::mt19937& rng) : table(c.rotary, kMaxPosition, c.table) {
    std::uniform_int_distribution<int64_t> pos(0, kMaxPosition - 1);
    const int streams = c.mrope ? 3 : 1;
    for (int64_t i = 0; i < streams * c.tokens; ++i) positions.push_back(i % 5 == 0 ? kMaxPosition - 1 - i % 3 : pos(rng));
    const int32_t half = c.rotary / 2;
    if (c.interleaved) section = {half * 3 / 8, half * 5 / 16, half - half * 3 / 8 - half * 5 / 16};  // Qwen3-VL: 24/20/20
    else section = {half / 4, half * 3 / 8, half - half / 4 - half * 3 / 8};  // Qwen2-VL: 16/24/24 for 128
  }
  RopeParams params(const RopeCase& c, Qkv& qkv) {
    RopeParams p;
    p.style = c.style;
    p.num_tokens = c.tokens;
    p.positions = positions.data();
    if (c.mrope) p.mrope_section = section.data();
    p.mrope_interleaved = c.interleaved;
    p.table = table.view();
    p.head_dim = c.head_dim;
    p.rotary_offset = c.offset;
    p.num_q_heads = c.q_heads;
    if (c.q_heads) p.q = qkv.q();
    p.num_kv_heads = c.k_heads;
    if (c.k_heads) p.k = qkv.k();
    p.num_threads = c.threads;
    return p;
  }
};

// Rotation error of the fp32 kernel: |x1 c| + |x2 s| <= 2 max|x| |c, s| <= 6 here, two roundings
// of that size; then one rounding to the storage type; the f32 reference carries u32.
double rope_tolerance(DType t, double ref) {
  const double u32 = unit_roundoff(DType::f32);
  const double fp32 = 2 * u32 * 6.0;
  const double floor = t == DType::f16 ? std::ldexp(1.0, -25) : 0.0;
  return fp32 + unit_roundoff(t) * (std::abs(ref) + fp32) + u32 * std::abs(ref) + floor;
}

void expect_buffers_near(const Buffer& got, const Buffer& ref, const std::string& what) {
  int bad = 0;
  for (std::size_t i = 0; i < got.n && bad < 5; ++i) {
    const double g = got.get(i), r = ref.get(i);
    if (std::isnan(r) && std::isnan(g)) continue;
    if (!(std::abs(g - r) <= rope_tolerance(got.dtype, r))) {
      ++bad;
      ADD_FAILURE() << what << " element " << i << ": got " << g << ", reference " << r;
    }
  }
}

// A case's inputs, its q / k / v, and their rotation by the reference (stored in fp32).
struct Rotated {
  std::mt19937 rng;
  RopeInputs in;
  const Qkv x;
  Qkv ref;
  Rotated(const RopeCase& c, uint32_t seed) : rng(seed), in(c, rng), x(c, c.x, rng), ref(x.as(DType::f32)) {
    RopeParams pr = in.params(c, ref);
    reference::apply_rope(pr);
  }
};

void check_apply(const RopeCase& c) {
  Rotated rot(c, uint32_t(std::hash<std::string>{}(c.name)));
  RopeInputs& in = rot.in;
  const Qkv& x = rot.x;
  const Qkv& ref = rot.ref;
  testutil::for_each_kernel("rope", [&] { return rope_kernel_name(c.x, c.x); }, [&](const std::string& kernel) {
    Qkv y = x.as(c.x);
    RopeParams p = in.params(c, y);
    apply_rope(p);
    expect_buffers_near(y.buf, ref.buf, c.name + " kernel " + kernel);
  });
}

// DeepSeek-V3's MLA: 16 query heads (of one rank) and one latent K of 576, the rotary 64 last.
RopeCase mla_case(RopeStyle style) {
  RopeCase c;
  c.style = style;
  c.head_dim = 576;
  c.rotary = 64;
  c.offset = 512;
  c.q_heads = 16;
  c.k_heads = 1;
  c.v_heads = 0;
  return c;
}

std::vector<RopeCase> cases() {
  std::vector<RopeCase> out;
  for (RopeStyle st : {RopeStyle::neox, RopeStyle::gptj})
    for (DType x : {DType::f32, DType::bf16, DType::f16}) {
      const std::string s = st == RopeStyle::neox ? "neox_" : "gptj_";
      RopeCase c;
      c.style = st;
      c.x = x;
      c.name = s + dtype_name(x);
      out.push_back(c);
      RopeCase partial = c;  // GPT-NeoX-20B: 24 of 96 rotate (half 12: a SIMD tail everywhere)
      partial.head_dim = 96;
      partial.rotary = 24;
      partial.name = s + "partial24of96_" + dtype_name(x);
      out.push_back(partial);
      RopeCase tail = c;  // Phi-2 style: 32 of 80, odd token count, bf16 table
      tail.head_dim = 80;
      tail.rotary = 34;
      tail.table = DType::bf16;
      tail.tokens = 7;
      tail.name = s + "partial34of80_bf16table_" + dtype_name(x);
      out.push_back(tail);
    }
  auto add = [&](const char* name, auto edit) {
    RopeCase c;
    edit(c);
    c.name = name;
    out.push_back(c);
  };
  add("neox_head64", [](RopeCase& c) { c.head_dim = c.rotary = 64; });
  add("gptj_head256_f16table", [](RopeCase& c) {
    c.head_dim = c.rotary = 256;
    c.style = RopeStyle::gptj;
    c.table = DType::f16;
  });
  add("q_only", [](RopeCase& c) { c.k_heads = 0; });
  add("k_only", [](RopeCase& c) { c.q_heads = 0; });
  add("mrope_qwen2vl", [](RopeCase& c) { c.mrope = true; });
  add("mrope_interleaved_qwen3vl", [](RopeCase& c) { c.mrope = c.interleaved = true, c.table = DType::bf16; });
  add("threads2_llama3_8b_heads", [](RopeCase& c) {
    c.threads = 2;
    c.tokens = 300;
    c.q_heads = 32;
    c.k_heads = c.v_heads = 8;
  });
  add("empty", [](RopeCase& c) { c.tokens = 0; });
  // MLA (DeepSeek-V2 / V3): the rotary 64 follow the latent 512; vLLM runs it GPT-J style
  for (RopeStyle st : {RopeStyle::gptj, RopeStyle::neox})
    add(st == RopeStyle::gptj ? "mla_offset512_gptj" : "mla_offset512_neox", [st](RopeCase& c) { c = mla_case(st); });
  add("offset_in_the_middle_f16", [](RopeCase& c) {  // a rotated part with untouched elements both sides
    c.x = DType::f16;
    c.head_dim = 96;
    c.rotary = 34;
    c.offset = 40;
  });
  return out;
}

class RopeTest : public ::testing::TestWithParam<RopeCase> {};
TEST_P(RopeTest, MatchesReference) { check_apply(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Cases, RopeTest, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// The fused entry: q rotated in place, k's rotation in the cache, v copied, k untouched.
TEST(RopeAppend, MatchesRopeThenAppend) {
  for (DType cache_t : {DType::bf16, DType::f32})
    for (RopeStyle st : {RopeStyle::neox, RopeStyle::gptj}) {
      RopeCase c;
      c.style = st;
      c.head_dim = 96;
      c.rotary = 64;  // partial: the tail is converted, not rotated
      c.tokens = 21;
      Rotated rot(c, 5);
      RopeInputs& in = rot.in;
      const Qkv& x = rot.x;
      const Qkv& ref = rot.ref;
      const int32_t page = 8;
      const int64_t pages = 6;
      std::vector<int64_t> slots;
      for (int64_t t = 0; t < c.tokens; ++t) slots.push_back(t == 4 ? -1 : (t * 7) % (pages * page));
      testutil::for_each_kernel("rope", [&] { return rope_kernel_name(c.x, cache_t); }, [&](const std::string& kernel) {
        Pool pool(Layout::hnd, cache_t, pages, page, c.k_heads, c.head_dim, c.head_dim);
        pool.k.fill(std::numeric_limits<float>::quiet_NaN());
        pool.v.fill(std::numeric_limits<float>::quiet_NaN());
        Qkv y = x.as(c.x);
        RopeParams p = in.params(c, y);
        apply_rope_and_append_kv({p, pool.view, y.v(), slots.data()});
        const std::string what = std::string("fused ") + dtype_name(cache_t) + " kernel " + kernel;
        for (int64_t t = 0; t < c.tokens; ++t)
          for (int32_t h = 0; h < c.k_heads; ++h)
            for (int32_t d = 0; d < c.head_dim; ++d) {
              const std::size_t src = std::size_t(t * y.stride_token + (c.q_heads + h) * c.head_dim + d);
              EXPECT_EQ(y.buf.get(src), x.buf.get(src)) << what << ": k must stay unchanged";
              if (slots[std::size_t(t)] < 0) continue;
              const int64_t pg = slots[std::size_t(t)] / page, off = slots[std::size_t(t)] % page;
              const double r = ref.buf.get(src), g = pool.at(0, pg, int32_t(off), h, d);
              EXPECT_LE(std::abs(g - r), rope_tolerance(cache_t, r)) << what << " k t " << t << " d " << d;
              const float v = x.buf.get(src + std::size_t(c.k_heads) * c.head_dim);
              EXPECT_EQ(pool.at(1, pg, int32_t(off), h, d), v) << what << " v t " << t;
            }
        // The skipped token's slot (4 * 7 = 28) is nobody else's: still NaN.
        EXPECT_TRUE(std::isnan(pool.at(0, 28 / page, 28 % page, 0, 0))) << what;
        // q matches the in-place rotation.
        for (int64_t t = 0; t < c.tokens; ++t)
          for (int32_t i = 0; i < c.q_heads * c.head_dim; ++i) {
            const std::size_t e = std::size_t(t * y.stride_token + i);
            EXPECT_LE(std::abs(y.buf.get(e) - ref.buf.get(e)), rope_tolerance(c.x, ref.buf.get(e))) << what << " q";
          }
      });
    }
}

// MLA's fused step: q and the latent K rotated on their trailing 64 dims, K written into a latent
// cache (V inside K, no value), every kernel.
TEST(RopeAppend, LatentCacheTakesKOnly) {
  RopeCase c = mla_case(RopeStyle::gptj);
  c.tokens = 9;
  Rotated rot(c, 8);
  RopeInputs& in = rot.in;
  const Qkv& x = rot.x;
  const Qkv& ref = rot.ref;
  const int32_t page = 4;
  std::vector<int64_t> slots;
  for (int64_t t = 0; t < c.tokens; ++t) slots.push_back((t * 5) % 12);
  testutil::for_each_kernel("rope", [&] { return rope_kernel_name(c.x, c.x); }, [&](const std::string& kernel) {
    Pool pool(Layout::latent, c.x, 3, page, 1, 576, 512);
    Qkv y = x.as(c.x);
    RopeParams p = in.params(c, y);
    apply_rope_and_append_kv({p, pool.view, TokensView{}, slots.data()});
    for (int64_t t = 0; t < c.tokens; ++t)
      for (int32_t d = 0; d < 576; ++d) {
        const std::size_t src = std::size_t(t * y.stride_token + c.q_heads * c.head_dim + d);
        const int64_t pg = slots[std::size_t(t)] / page, off = slots[std::size_t(t)] % page;
        const double r = ref.buf.get(src), g = pool.at(0, pg, int32_t(off), 0, d);
        ASSERT_LE(std::abs(g - r), rope_tolerance(c.x, r)) << kernel << " k t " << t << " d " << d;
        if (d < 512) ASSERT_EQ(g, x.buf.get(src)) << kernel << ": the latent part is copied as it is";
        if (d < 512) ASSERT_EQ(pool.at(1, pg, int32_t(off), 0, d), g) << kernel << ": V reads K's leading dims";
      }
    expect_error([&] { apply_rope_and_append_kv({p, pool.view, y.v(), slots.data()}); },
                 {"apply_rope_and_append_kv", "value must be null", "latent cache"});
  });
}

// Tables: each scaling rule against the published formula, written out independently here.
double table_at(const RopeCache& c, int64_t pos, int32_t i, bool sin) {
  return c.cos_sin[std::size_t(pos * c.rotary_dim + (sin ? c.rotary_dim / 2 : 0) + i)];
}

void expect_table_matches(const RopeCache& c, const std::vector<double>& freq, double magnitude) {
  for (int64_t pos : {int64_t(0), int64_t(1), int64_t(17), int64_t(1000), c.max_position - 1})
    for (int32_t i = 0; i < c.rotary_dim / 2; ++i) {
      const double a = double(pos) * freq[std::size_t(i)];
      EXPECT_NEAR(table_at(c, pos, i, false), std::cos(a) * magnitude, 4e-7 * magnitude) << "pos " << pos << " i " << i;
      EXPECT_NEAR(table_at(c, pos, i, true), std::sin(a) * magnitude, 4e-7 * magnitude) << "pos " << pos << " i " << i;
    }
}

// A head-128 config with a table of 32768 positions.
RopeConfig scaled(double theta, RopeScaling scaling, double factor, int64_t original_max_position) {
  RopeConfig cfg;
  cfg.rotary_dim = 128;
  cfg.max_position = 32768;
  cfg.theta = theta;
  cfg.scaling = scaling;
  cfg.factor = factor;
  cfg.original_max_position = original_max_position;
  return cfg;
}

TEST(RopeTable, Llama31KnownFrequencies) {
  // Llama 3.1 8B: theta 500000, head 128, factor 8, low 1, high 4, original context 8192.
  const RopeConfig cfg = scaled(500000, RopeScaling::llama3, 8, 8192);
  std::vector<double> expect;
  for (int i = 0; i < 64; ++i) {
    const double f = 1.0 / std::pow(500000.0, i / 64.0);
    const double period = 2 * kPi / f;  // positions per turn
    if (period < 8192.0 / 4) expect.push_back(f);  // fast: unchanged
    else if (period > 8192.0 / 1) expect.push_back(f / 8);  // slow: interpolated
    else {
      const double w = (8192.0 / period - 1) / (4 - 1);  // 0 at the slow edge, 1 at the fast edge
      expect.push_back(w * f + (1 - w) * f / 8);
    }
  }
  const std::vector<double> got = rope_inv_freq(cfg);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(got[std::size_t(i)], expect[std::size_t(i)], 1e-15) << i;
  EXPECT_DOUBLE_EQ(got[0], 1.0);
  EXPECT_DOUBLE_EQ(got[63], std::pow(500000.0, -63.0 / 64.0) / 8);
  EXPECT_DOUBLE_EQ(got[20], std::pow(500000.0, -20.0 / 64.0));  // period ~ 38: unchanged
  expect_table_matches(make_rope_cache(cfg), expect, 1.0);
}

TEST(RopeTable, YarnMagnitudeAndRamp) {
  // Qwen2.5 with YaRN factor 4 over 32768: theta 1e6, head 128.
  const RopeConfig cfg = scaled(1e6, RopeScaling::yarn, 4, 32768);
  EXPECT_NEAR(rope_magnitude(cfg), 1.1386294361119891, 1e-15);  // 0.1 ln 4 + 1
  // Correction range: dims where 32 and 1 turns fit into 32768 positions.
  auto dim_for = [](double turns) { return 128 * std::log(32768 / (turns * 2 * kPi)) / (2 * std::log(1e6)); };
  const double lo = std::floor(dim_for(32)), hi = std::ceil(dim_for(1));
  std::vector<double> expect;
  for (int i = 0; i < 64; ++i) {
    const double f = std::pow(1e6, -i / 64.0);
    const double interp = std::min(1.0, std::max(0.0, (i - lo) / (hi - lo)));  // 0: keep f, 1: f / 4
    expect.push_back(f * (1 - interp) + f / 4 * interp);
  }
  const std::vector<double> got = rope_inv_freq(cfg);
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(got[std::size_t(i)], expect[std::size_t(i)], 1e-15) << i;
  expect_table_matches(make_rope_cache(cfg), expect, rope_magnitude(cfg));
}

TEST(RopeTable, LinearAndDynamicNtk) {
  RopeConfig cfg;
  cfg.rotary_dim = 64;
  cfg.max_position = 8192;
  cfg.scaling = RopeScaling::linear;
  cfg.factor = 2;
  std::vector<double> expect;
  for (int i = 0; i < 32; ++i) expect.push_back(std::pow(10000.0, -i / 32.0) / 2);
  expect_table_matches(make_rope_cache(cfg), expect, 1.0);

  cfg.scaling = RopeScaling::dynamic_ntk;
  cfg.original_max_position = 2048;  // table of 8192 = 4x: base grows by (2 * 4 - 1)^(64 / 62)
  const double base = 10000.0 * std::pow(2.0 * 8192 / 2048 - 1, 64.0 / 62.0);
  expect.clear();
  for (int i = 0; i < 32; ++i) expect.push_back(std::pow(base, -i / 32.0));
  expect_table_matches(make_rope_cache(cfg), expect, 1.0);
  cfg.max_position = 2048;  // within the original context: no change
  EXPECT_DOUBLE_EQ(rope_inv_freq(cfg)[5], std::pow(10000.0, -5 / 32.0));
}

TEST(RopeErrors, NameTheArgument) {
  RopeCase c;
  c.tokens = 3;
  std::mt19937 rng(3);
  RopeInputs in(c, rng);
  Qkv x(c, c.x, rng);
  auto call = [&](auto edit) {
    return [&, edit] {
      RopeParams p = in.params(c, x);
      edit(p);
      apply_rope(p);
    };
  };
  expect_error(call([](RopeParams& p) { p.table.rotary_dim = 63; }), {"rotary_dim", "even"});
  // Trust issue, finding 3: the int32 sum of the sections wrapped and passed the check.
  static const int32_t wrapping[3] = {INT32_MAX, INT32_MAX, 34};
  expect_error(call([](RopeParams& p) { p.mrope_section = wrapping; }), {"mrope_section", "sum to rotary_dim / 2"});
  // Findings 6 and 8: a huge table is refused before allocation; an unknown scaling is named.
  RopeConfig big;
  big.rotary_dim = 64;
  big.max_position = int64_t(1) << 40;
  expect_error([&] { make_rope_cache(big); }, {"max_position", "[1, 2^24]"});
  big.max_position = 16;
  big.scaling = RopeScaling(9);
  expect_error([&] { make_rope_cache(big); }, {"config.scaling = 9 is not a RopeScaling"});
  expect_error(call([](RopeParams& p) { p.head_dim = 64; }), {"rotary_dim", "head_dim"});
  expect_error(call([](RopeParams& p) { p.positions = nullptr; }), {"positions", "null"});
  expect_error(call([](RopeParams& p) { p.rotary_offset = 1; }), {"rotary_offset = 1", "[0, 0]"});
  expect_error(call([](RopeParams& p) { p.rotary_offset = -2; }), {"rotary_offset = -2"});
  const int64_t saved = in.positions[1];
  in.positions[1] = kMaxPosition;
  expect_error(call([](RopeParams&) {}), {"positions[1]", "outside"});
  in.positions[1] = -1;
  expect_error(call([](RopeParams&) {}), {"positions[1]"});
  in.positions[1] = saved;
  const int32_t bad_section[3] = {16, 16, 16};
  expect_error(call([&](RopeParams& p) { p.mrope_section = bad_section; }), {"mrope_section", "rotary_dim / 2"});
  expect_error(call([](RopeParams& p) { p.q.data = nullptr; }), {"q.data", "null"});
  expect_error(call([](RopeParams& p) { p.k.dtype = DType::f32; }), {"k.dtype", "q.dtype"});
  expect_error(call([](RopeParams& p) { p.table.cos_sin = nullptr; }), {"table.cos_sin"});
  expect_error(call([](RopeParams& p) { p.num_tokens = -2; }), {"num_tokens"});
  Pool pool(Layout::nhd, DType::bf16, 4, 16, 4, 128, 128);
  std::vector<int64_t> slots = {0, 1, 2};
  expect_error([&] { apply_rope_and_append_kv({in.params(c, x), pool.view, x.v(), slots.data()}); },
               {"num_kv_heads", "cache.num_kv_heads"});
  RopeConfig cfg;
  cfg.rotary_dim = 64;
  cfg.max_position = 16;
  cfg.scaling = RopeScaling::linear;
  cfg.factor = 0.5;
  expect_error([&] { make_rope_cache(cfg); }, {"config.factor"});
  cfg.scaling = RopeScaling::yarn;
  cfg.factor = 2;
  expect_error([&] { make_rope_cache(cfg); }, {"original_max_position"});
}

}  // namespace

TEST(RopeTable, ScalingNamesParse) {
  EXPECT_EQ(parse_rope_scaling("llama3"), RopeScaling::llama3);
  EXPECT_EQ(parse_rope_scaling("dynamic_ntk"), RopeScaling::dynamic_ntk);
  testutil::expect_error([] { parse_rope_scaling("ntk"); }, {"parse_rope_scaling", "\"ntk\"", "yarn"});
}
