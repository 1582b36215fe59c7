// The packed weight: quantizers, the lossless importers (checked element by element against
// hand-built checkpoints), save/load, and the errors of each.
#include <cstring>
#include <functional>

#include "test_util.hpp"
#include "weight_file.hpp"

namespace {

using namespace pagedinfer;
using testutil::expect_error;

uint16_t f16(float x) { return float_to_f16(x); }
double from_f16(uint16_t b) { return f16_to_float(b); }

std::vector<float> random_weights(int64_t n, int64_t k, std::mt19937& rng) {
  return testutil::random_weights(n, k, rng, 0.02f);
}
// ---- quantize ----

struct QuantCase {
  int bits;
  int group;
  QuantZero zero;
};

class Quantize : public ::testing::TestWithParam<QuantCase> {};

TEST_P(Quantize, ErrorIsWithinHalfAStepAndDequantizeIsScaleTimesQPlusOffset) {
  const QuantCase c = GetParam();
  std::mt19937 rng(7);
  const int64_t n = 37, k = c.group ? 4 * c.group : 203;
  std::vector<float> w = random_weights(n, k, rng);
  w[5] = 0.f;
  for (int64_t i = 0; i < k; ++i) w[size_t(3 * k + i)] = 0.f;  // an all-zero row
  const QuantizedWeight q = quantize(w.data(), DType::f32, n, k, k, QuantFormat{c.bits, c.group, c.zero});
  EXPECT_EQ(q.n(), n);
  EXPECT_EQ(q.k(), k);
  EXPECT_EQ(q.group_size(), c.group ? c.group : k);
  const int32_t qmax = (1 << c.bits) - 1;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) {
      const double s = q.scale(r, i), d = q.dequantize(r, i);
      ASSERT_GE(q.q(r, i), 0);
      ASSERT_LE(q.q(r, i), qmax);
      ASSERT_EQ(d, s * q.q(r, i) + q.offset(r, i));
      // Half a step; with an integer zero point, rounding z shifts the grid by up to half a step,
      // so the largest value may be clamped a whole step away.
      const double steps = c.zero == QuantZero::zero_point ? 1.0 : 0.5;
      ASSERT_LE(std::fabs(d - w[size_t(r * k + i)]), steps * s * 1.0001 + 1e-12) << r << "," << i;
    }
  for (int64_t i = 0; i < k; ++i) EXPECT_EQ(q.dequantize(3, i), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Formats, Quantize,
                         ::testing::Values(QuantCase{4, 128, QuantZero::zero_point}, QuantCase{4, 32, QuantZero::symmetric},
                                           QuantCase{4, 64, QuantZero::float_offset}, QuantCase{4, 0, QuantZero::zero_point},
                                           QuantCase{8, 128, QuantZero::symmetric}, QuantCase{8, 0, QuantZero::symmetric},
                                           QuantCase{8, 32, QuantZero::zero_point}, QuantCase{8, 64, QuantZero::float_offset}));

TEST(Quantize, Bf16AndF16InputsAndStrideGiveTheSameWeightAsFp32) {
  std::mt19937 rng(3);
  const int64_t n = 20, k = 64, stride = 80;
  std::vector<float> w = random_weights(n, stride, rng);
  for (auto& v : w) v = bf16_to_float(float_to_bf16(v));  // exact in bf16 and (mostly) fp16 range
  std::vector<uint16_t> wb(w.size());
  for (size_t i = 0; i < w.size(); ++i) wb[i] = float_to_bf16(w[i]);
  const QuantFormat f{4, 32, QuantZero::zero_point};
  const QuantizedWeight a = quantize(w.data(), DType::f32, n, k, stride, f);
  const QuantizedWeight b = quantize(wb.data(), DType::bf16, n, k, stride, f);
  EXPECT_EQ(save_weight(a), save_weight(b));
}

TEST(Quantize, GateUpKeepsEveryRowsValues) {
  std::mt19937 rng(4);
  const int64_t n = 2 * 40, k = 64;  // 40 rows per half: not a multiple of the 16-column tile
  const std::vector<float> w = random_weights(n, k, rng);
  const QuantFormat f{4, 64, QuantZero::symmetric};
  const QuantizedWeight plain = quantize(w.data(), DType::f32, n, k, k, f);
  const QuantizedWeight fused = quantize(w.data(), DType::f32, n, k, k, testutil::gate_up_options(f));
  EXPECT_TRUE(fused.gate_up());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) ASSERT_EQ(fused.dequantize(r, i), plain.dequantize(r, i));
}

TEST(Quantize, Errors) {
  std::vector<float> w(64 * 130, 0.f);
  expect_error([&] { quantize(w.data(), DType::f32, 4, 128, 128, QuantFormat{3, 128, QuantZero::symmetric}); },
               {"quantize", "format.bits = 3"});
  expect_error([&] { quantize(w.data(), DType::f32, 4, 128, 128, QuantFormat{4, 48, QuantZero::symmetric}); },
               {"format.group_size = 48"});
  expect_error([&] { quantize(w.data(), DType::f32, 4, 96, 96, QuantFormat{4, 64, QuantZero::symmetric}); },
               {"group_size = 64", "does not divide k = 96"});
  expect_error([&] { quantize(nullptr, DType::f32, 4, 128, 128, QuantFormat{}); }, {"w is null"});
  expect_error([&] { quantize(w.data(), DType::f32, 4, 128, 100, QuantFormat{}); }, {"stride = 100"});
  expect_error([&] { quantize(w.data(), DType::f32, 0, 128, 128, QuantFormat{}); }, {"n = 0"});
  expect_error([&] { quantize(w.data(), DType::f32, 3, 128, 128, testutil::gate_up_options(QuantFormat{})); }, {"gate_up", "even n"});
  // Trust issue, finding 4: weights beyond fp16's range made the scale infinite and q NaN (UB).
  std::vector<float> big(128, 1.f);
  big[5] = 1e8f;
  expect_error([&] { quantize(big.data(), DType::f32, 1, 128, 128, QuantFormat{8, 0, QuantZero::symmetric}); },
               {"w[0][5] = 1e+08", "beyond fp16's range"});
  expect_error([&] { quantize(w.data(), DType::f32, 1, 65600, 65600, QuantFormat{4, 32, QuantZero::symmetric}); },
               {"k = 65600"});
  w[7] = NAN;
  expect_error([&] { quantize(w.data(), DType::f32, 4, 128, 128, QuantFormat{}); }, {"w[0][7]", "not finite"});
  expect_error([] { QuantizedWeight().n(); }, {"empty"});
}

// ---- AWQ ----

// An AWQ checkpoint built in the test from chosen q, z and s.
struct AwqCheckpoint {
  int64_t n, k;
  int group;
  std::vector<int32_t> q, z;  // [k][n], [groups][n]
  std::vector<uint16_t> scales;
  std::vector<int32_t> qweight, qzeros;

  static int32_t pack_awq(const int32_t* vals8) {
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    uint32_t word = 0;
    for (int p = 0; p < 8; ++p) word |= uint32_t(vals8[order[p]]) << (4 * p);
    return int32_t(word);
  }
  AwqCheckpoint(int64_t n_, int64_t k_, int group_, std::mt19937& rng) : n(n_), k(k_), group(group_) {
    std::uniform_int_distribution<int32_t> nib(0, 15);
    q.resize(size_t(k * n));
    z.resize(size_t(k / group * n));
    for (auto& v : q) v = nib(rng);
    for (auto& v : z) v = nib(rng);
    std::uniform_real_distribution<float> sd(0.001f, 0.05f);
    for (size_t i = 0; i < z.size(); ++i) scales.push_back(f16(sd(rng)));
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < n / 8; ++j) qweight.push_back(pack_awq(&q[size_t(i * n + 8 * j)]));
    for (int64_t g = 0; g < k / group; ++g)
      for (int64_t j = 0; j < n / 8; ++j) qzeros.push_back(pack_awq(&z[size_t(g * n + 8 * j)]));
  }
};

TEST(ImportAwq, LiteralWordUsesTheAwqNibbleOrder) {
  // One row (k = 32 rows all alike) of 8 columns; nibble p = p, so column order[p] holds p.
  std::vector<int32_t> qweight(32, 0x76543210), qzeros(1, 0x11111111);
  std::vector<uint16_t> scales(8, f16(0.5f));
  const QuantizedWeight w = import_awq(qweight.data(), qzeros.data(), scales.data(), 8, 32, 32);
  const int expected_q[8] = {0, 4, 1, 5, 2, 6, 3, 7};  // column c
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(w.q(c, 0), expected_q[c]) << c;
    EXPECT_EQ(w.dequantize(c, 31), 0.5 * (expected_q[c] - 1));
  }
}

TEST(ImportAwq, EveryElementDequantizesToQMinusZTimesS) {
  std::mt19937 rng(11);
  const AwqCheckpoint ck(48, 256, 128, rng);
  const QuantizedWeight w = import_awq(ck.qweight.data(), ck.qzeros.data(), ck.scales.data(), ck.n, ck.k, ck.group);
  for (int64_t r = 0; r < ck.n; ++r)
    for (int64_t i = 0; i < ck.k; ++i) {
      const size_t g = size_t(i / ck.group * ck.n + r);
      ASSERT_EQ(w.q(r, i), ck.q[size_t(i * ck.n + r)]);
      ASSERT_EQ(w.dequantize(r, i), (ck.q[size_t(i * ck.n + r)] - ck.z[g]) * from_f16(ck.scales[g]));
    }
}

TEST(ImportAwq, Errors) {
  std::vector<int32_t> buf(1024, 0);
  std::vector<uint16_t> s(1024, 0);
  expect_error([&] { import_awq(nullptr, buf.data(), s.data(), 8, 32, 32); }, {"import_awq", "qweight is null"});
  expect_error([&] { import_awq(buf.data(), buf.data(), s.data(), 12, 32, 32); }, {"n = 12", "multiple of 8"});
  expect_error([&] { import_awq(buf.data(), buf.data(), s.data(), 8, 48, 32); }, {"does not divide k = 48"});
}

// ---- GPTQ ----

struct GptqCheckpoint {
  int64_t n, k;
  int bits, group;
  std::vector<int32_t> q, z, g_idx;  // q [k][n]; z [groups][n] true zeros in [1, 2^bits]
  std::vector<uint16_t> scales;
  std::vector<int32_t> qweight, qzeros;

  GptqCheckpoint(int64_t n_, int64_t k_, int bits_, int group_, bool act_order, std::mt19937& rng)
      : n(n_), k(k_), bits(bits_), group(group_) {
    const int per = 32 / bits;
    const int32_t qmax = (1 << bits) - 1;
    std::uniform_int_distribution<int32_t> qd(0, qmax), zd(1, qmax + 1);  // z = 2^bits: stored 0 - 1 wraps
    q.resize(size_t(k * n));
    for (auto& v : q) v = qd(rng);
    const int64_t groups = k / group;
    z.resize(size_t(groups * n));
    for (auto& v : z) v = zd(rng);
    std::uniform_real_distribution<float> sd(0.001f, 0.05f);
    for (size_t i = 0; i < z.size(); ++i) scales.push_back(f16(sd(rng)));
    for (int64_t i = 0; i < k; ++i) g_idx.push_back(int32_t(i / group));
    if (act_order) std::shuffle(g_idx.begin(), g_idx.end(), rng);
    qweight.assign(size_t(k / per * n), 0);
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < n; ++j)
        qweight[size_t(i / per * n + j)] |= int32_t(uint32_t(q[size_t(i * n + j)]) << (bits * (i % per)));
    qzeros.assign(size_t(groups * n / per), 0);
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t j = 0; j < n; ++j) {
        const uint32_t stored = uint32_t(z[size_t(g * n + j)] - 1) & uint32_t(qmax);
        qzeros[size_t(g * n / per + j / per)] |= int32_t(stored << (bits * (j % per)));
      }
  }
  QuantizedWeight import(bool with_g_idx = true) const {
    return import_gptq(qweight.data(), qzeros.data(), scales.data(), with_g_idx ? g_idx.data() : nullptr, n, k, bits,
                       group);
  }
  void check(const QuantizedWeight& w) const {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < k; ++i) {
        const size_t g = size_t(g_idx[size_t(i)] * n + r);
        ASSERT_EQ(w.q(r, i), q[size_t(i * n + r)]) << r << "," << i;
        ASSERT_EQ(w.dequantize(r, i), (q[size_t(i * n + r)] - z[g]) * from_f16(scales[g])) << r << "," << i;
      }
  }
};

TEST(ImportGptq, LiteralWordsAndTheV1ZeroConvention) {
  // Column 0: rows 0..7 hold 0..7; stored zero 0 means z = 1; stored 15 means z = 16 (v1 wrap).
  std::vector<int32_t> qweight(64 / 8 * 16, 0);  // [k / 8, n]
  qweight[0] = 0x76543210;
  std::vector<int32_t> qzeros(2, 0);
  qzeros[0] = int32_t(0xF0u << 0);  // column 0: stored 0 -> z 1; column 1: stored 15 -> z 16
  std::vector<uint16_t> scales(16, f16(0.25f));
  const QuantizedWeight w = import_gptq(qweight.data(), qzeros.data(), scales.data(), nullptr, 16, 64, 4, 64);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(w.q(0, i), i);
    EXPECT_EQ(w.dequantize(0, i), 0.25 * (i - 1));
  }
  EXPECT_EQ(w.dequantize(1, 0), 0.25 * (0 - 16));
  EXPECT_EQ(w.dequantize(2, 0), 0.25 * (0 - 1));
}

TEST(ImportGptq, Int4AndInt8WithAndWithoutActOrder) {
  std::mt19937 rng(5);
  for (int bits : {4, 8})
    for (bool act_order : {false, true}) {
      SCOPED_TRACE(testing::Message() << "bits " << bits << " act_order " << act_order);
      const GptqCheckpoint ck(24, 256, bits, 64, act_order, rng);
      const QuantizedWeight w = ck.import();
      EXPECT_EQ(w.act_order(), act_order);
      ck.check(w);
    }
}

TEST(ImportGptq, Errors) {
  std::mt19937 rng(6);
  GptqCheckpoint ck(16, 128, 4, 32, false, rng);
  ck.g_idx[0] = 1;  // group 0 now has 31 members, group 1 has 33
  expect_error([&] { ck.import(); }, {"import_gptq", "g_idx", "members"});
  ck.g_idx[0] = 9;
  expect_error([&] { ck.import(); }, {"g_idx[0] = 9"});
  expect_error([&] { import_gptq(ck.qweight.data(), ck.qzeros.data(), ck.scales.data(), nullptr, 16, 128, 3, 32); },
               {"bits = 3"});
  expect_error([&] { import_gptq(ck.qweight.data(), nullptr, ck.scales.data(), nullptr, 16, 128, 4, 32); },
               {"qzeros is null"});
}

// ---- llama.cpp ----

TEST(ImportQ4_0, LiteralBlock) {
  // Two rows, one block each: d = 0.5 and 2; qs[j] = j | (15 - j) << 4.
  std::vector<uint8_t> blocks(2 * 18);
  for (int row = 0; row < 2; ++row) {
    const uint16_t d = f16(row ? 2.f : 0.5f);
    std::memcpy(&blocks[size_t(row * 18)], &d, 2);
    for (int j = 0; j < 16; ++j) blocks[size_t(row * 18 + 2 + j)] = uint8_t(j | (15 - j) << 4);
  }
  const QuantizedWeight w = import_q4_0(blocks.data(), 2, 32);
  for (int row = 0; row < 2; ++row) {
    const double d = row ? 2.0 : 0.5;
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(w.dequantize(row, j), d * (j - 8));
      EXPECT_EQ(w.dequantize(row, j + 16), d * (15 - j - 8));
    }
  }
}

TEST(ImportQ8_0, RandomBlocks) {
  std::mt19937 rng(8);
  const int64_t n = 5, k = 96;
  std::vector<uint8_t> blocks(size_t(n * k / 32 * 34));
  std::uniform_int_distribution<int> b(0, 255);
  for (auto& v : blocks) v = uint8_t(b(rng));
  for (size_t blk = 0; blk < blocks.size() / 34; ++blk) {  // finite scales
    const uint16_t d = f16(0.01f * float(blk + 1));
    std::memcpy(&blocks[blk * 34], &d, 2);
  }
  const QuantizedWeight w = import_q8_0(blocks.data(), n, k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) {
      const size_t blk = size_t(r * (k / 32) + i / 32);
      uint16_t d;
      std::memcpy(&d, &blocks[blk * 34], 2);
      ASSERT_EQ(w.dequantize(r, i), from_f16(d) * double(int8_t(blocks[blk * 34 + 2 + size_t(i % 32)])));
    }
  expect_error([&] { import_q8_0(blocks.data(), n, 40); }, {"import_q8_0", "k = 40", "multiple of 32"});
  expect_error([&] { import_q4_0(nullptr, n, 64); }, {"blocks is null"});
}

// ---- save / load ----

TEST(SaveLoad, RoundTripIsExactForEveryKind) {
  std::mt19937 rng(9);
  const GptqCheckpoint ck(32, 128, 4, 32, true, rng);
  const std::vector<float> wf = random_weights(40, 100, rng);
  const std::vector<QuantizedWeight> weights = {
      ck.import(), quantize(wf.data(), DType::f32, 40, 100, 100, QuantFormat{8, 0, QuantZero::symmetric}),
      quantize(wf.data(), DType::f32, 40, 100, 100, testutil::gate_up_options(QuantFormat{4, 0, QuantZero::float_offset}))};
  for (const QuantizedWeight& w : weights) {
    const std::vector<uint8_t> bytes = save_weight(w);
    const QuantizedWeight back = load_weight(bytes.data(), bytes.size());
    EXPECT_EQ(save_weight(back), bytes);
    EXPECT_EQ(back.gate_up(), w.gate_up());
    EXPECT_EQ(back.act_order(), w.act_order());
    for (int64_t r = 0; r < w.n(); ++r)
      for (int64_t i = 0; i < w.k(); ++i) ASSERT_EQ(back.dequantize(r, i), w.dequantize(r, i));
  }
  const std::string path = ::testing::TempDir() + "pagedinfer_weight.bin";
  save_weight_file(weights[0], path);
  EXPECT_EQ(save_weight(load_weight_file(path)), save_weight(weights[0]));
  std::remove(path.c_str());
}

// Version 1 to 3 files (version 3 without the dtype field, 1 and 2 without k_packed either;
// version 1 with the byte-serial FNV-1a 64 checksum) still load; version 4 is what save writes.
TEST(SaveLoad, ReadsVersionOneToThreeFiles) {
  std::mt19937 rng(12);
  const std::vector<float> wf = random_weights(24, 64, rng);
  const std::vector<uint8_t> v4 = save_weight(quantize(wf.data(), DType::f32, 24, 64, 64, QuantFormat{8, 32, QuantZero::symmetric}));
  EXPECT_EQ(v4[8], 4);
  for (uint8_t version : {1, 2, 3}) {
    std::vector<uint8_t> old = v4;
    old.erase(old.begin() + 56, old.begin() + 60);  // i32 dtype
    if (version < 3) old.erase(old.begin() + 48, old.begin() + 56);  // i64 k_packed
    old[8] = version;
    const uint64_t sum = testutil::weight_file_checksum(version, old.data(), old.size() - 8);
    std::memcpy(old.data() + old.size() - 8, &sum, 8);
    EXPECT_EQ(save_weight(load_weight(old.data(), old.size())), v4) << "version " << int(version);
  }
}

// The version 2 (to 4) checksum catches every single bit flip, and flips of the same bit in two words
// (which cancel in a plain XOR-multiply chain without the fold).
TEST(SaveLoad, ChecksumCatchesBitFlips) {
  std::mt19937 rng(13);
  const std::vector<float> wf = random_weights(16, 64, rng);
  const std::vector<uint8_t> good = save_weight(quantize(wf.data(), DType::f32, 16, 64, 64, QuantFormat{4, 32, QuantZero::zero_point}));
  const size_t payload = good.size() - 8, first = 60;  // past the header
  for (size_t byte = first; byte < payload; byte += 7)
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> bad = good;
      bad[byte] ^= uint8_t(1 << bit);
      ASSERT_THROW(load_weight(bad.data(), bad.size()), Error) << "byte " << byte << " bit " << bit;
    }
  for (size_t a = first; a + 64 < payload; a += 40) {
    std::vector<uint8_t> bad = good;
    bad[a + 7] ^= 0x80;  // bit 63 of one word and of the word 32 bytes on (the same lane)
    bad[a + 39] ^= 0x80;
    ASSERT_THROW(load_weight(bad.data(), bad.size()), Error) << "bytes " << a + 7 << ", " << a + 39;
  }
}

TEST(SaveLoad, RefusesTruncatedCorruptAndForeignData) {
  std::mt19937 rng(10);
  const std::vector<float> wf = random_weights(16, 64, rng);
  const std::vector<uint8_t> good = save_weight(quantize(wf.data(), DType::f32, 16, 64, 64, QuantFormat{4, 32, QuantZero::zero_point}));
  for (size_t len : {size_t(0), size_t(7), size_t(20), good.size() / 2, good.size() - 1})
    expect_error([&] { load_weight(good.data(), len); }, {"load_weight", "truncated"});
  std::vector<uint8_t> bad = good;
  bad[good.size() / 2] ^= 0x10;
  expect_error([&] { load_weight(bad.data(), bad.size()); }, {"checksum mismatch"});
  bad = good;
  bad[8] = 5;  // version
  expect_error([&] { load_weight(bad.data(), bad.size()); }, {"format version 5", "not supported"});
  bad = good;
  bad[48] ^= 0x40;  // k_packed: padding needs an act-order weight
  uint64_t sum = testutil::weight_file_checksum(4, bad.data(), bad.size() - 8);
  std::memcpy(bad.data() + bad.size() - 8, &sum, 8);
  expect_error([&] { load_weight(bad.data(), bad.size()); }, {"k_packed = 0", "only act-order weights pad"});
  bad = good;
  bad[56] = 7;  // dtype
  sum = testutil::weight_file_checksum(4, bad.data(), bad.size() - 8);
  std::memcpy(bad.data() + bad.size() - 8, &sum, 8);
  expect_error([&] { load_weight(bad.data(), bad.size()); }, {"dtype = 7", "not a DType"});
  bad = good;
  bad[0] = 'X';
  expect_error([&] { load_weight(bad.data(), bad.size()); }, {"bad magic"});
  bad = good;
  bad.push_back(0);
  expect_error([&] { load_weight(bad.data(), bad.size()); }, {"unexpected bytes"});
  expect_error([] { load_weight_file("/nonexistent/dir/w.bin"); }, {"load_weight_file", "cannot open"});
  // Trust issue, finding 7: a directory gave std::ios_base::failure, not pagedinfer::Error.
  expect_error([] { load_weight_file("/tmp"); }, {"load_weight_file", "not a regular file"});
  // Trust issue, finding 2: a header claiming n = 2^30 over a 60-byte file allocated terabytes
  // before the truncation was seen; the reserved field was not checked.
  std::vector<uint8_t> huge(good.begin(), good.begin() + 48);
  const int64_t n = int64_t(1) << 30, k = 65536;
  std::memcpy(huge.data() + 16, &n, 8);
  std::memcpy(huge.data() + 24, &k, 8);
  const int32_t fmt[4] = {4, 128, 1, 0};
  std::memcpy(huge.data() + 32, fmt, 16);
  huge.resize(60, 0);
  expect_error([&] { load_weight(huge.data(), huge.size()); }, {"load_weight", "needs", "truncated or the header corrupt"});
  // Found by fuzz_load_weight: n = 2^63 - 1 overflowed deriving the packed shape (UBSan) before
  // new_storage checked it.
  const int64_t too_many = INT64_MAX;
  std::memcpy(huge.data() + 16, &too_many, 8);
  expect_error([&] { load_weight(huge.data(), huge.size()); }, {"load_weight", "exceeds 2^31"});
  std::vector<uint8_t> reserved = good;
  reserved[12] = 1;
  expect_error([&] { load_weight(reserved.data(), reserved.size()); }, {"reserved header field is 1"});
}

// The importers on many column tiles, split over threads: the packed bytes do not depend on the
// thread count, and every element dequantizes to the checkpoint's own formula.
TEST(Import, ManyTilesAreThreadCountInvariantAndExact) {
  const int64_t n = 200, k = 256, g = 64, groups = k / g;
  std::mt19937 rng(17);
  std::uniform_int_distribution<uint32_t> word;
  std::uniform_real_distribution<float> scale(0.01f, 0.1f);
  std::vector<int32_t> awq_q(size_t(k * n / 8)), awq_z(size_t(groups * n / 8)), gptq_q(size_t(k / 8 * n)),
      gptq_z(size_t(groups * n / 8)), g_idx(static_cast<size_t>(k));
  for (auto* v : {&awq_q, &awq_z, &gptq_q, &gptq_z})
    for (int32_t& x : *v) x = int32_t(word(rng));
  std::vector<uint16_t> scales(size_t(groups * n));
  for (uint16_t& x : scales) x = float_to_f16(scale(rng));
  for (int64_t i = 0; i < k; ++i) g_idx[size_t(i)] = int32_t(i % groups);  // act-order: groups interleaved
  std::vector<uint8_t> q4(size_t(n * k / 32 * 18)), q8(size_t(n * k / 32 * 34));
  for (auto* v : {&q4, &q8})
    for (uint8_t& x : *v) x = uint8_t(word(rng));
  for (int64_t b = 0; b < n * k / 32; ++b) {  // finite fp16 scales
    std::memcpy(&q4[size_t(b * 18)], &scales[size_t(b % scales.size())], 2);
    std::memcpy(&q8[size_t(b * 34)], &scales[size_t(b % scales.size())], 2);
  }
  auto nib = [](int32_t w, int64_t e) { return int((uint32_t(w) >> (4 * e)) & 15); };
  static constexpr int kAwqNibble[8] = {0, 4, 1, 5, 2, 6, 3, 7};
  auto s16 = [&](int64_t gr, int64_t col) { return double(f16_to_float(scales[size_t(gr * n + col)])); };
  struct Format {
    const char* name;
    std::function<QuantizedWeight(int)> import;
    std::function<double(int64_t, int64_t)> value;  // the checkpoint's w[row][i]
  };
  const Format formats[] = {
      {"awq", [&](int t) { return import_awq(awq_q.data(), awq_z.data(), scales.data(), n, k, int32_t(g), t); },
       [&](int64_t r, int64_t i) {
         const int q = nib(awq_q[size_t(i * (n / 8) + r / 8)], kAwqNibble[r % 8]);
         const int z = nib(awq_z[size_t(i / g * (n / 8) + r / 8)], kAwqNibble[r % 8]);
         return (q - z) * s16(i / g, r);
       }},
      {"gptq_act_order",
       [&](int t) { return import_gptq(gptq_q.data(), gptq_z.data(), scales.data(), g_idx.data(), n, k, 4, int32_t(g), t); },
       [&](int64_t r, int64_t i) {
         const int64_t gr = g_idx[size_t(i)];
         const int q = nib(gptq_q[size_t(i / 8 * n + r)], i % 8);
         const int z = nib(gptq_z[size_t(gr * (n / 8) + r / 8)], r % 8) + 1;
         return (q - z) * s16(gr, r);
       }},
      {"q4_0", [&](int t) { return import_q4_0(q4.data(), n, k, t); },
       [&](int64_t r, int64_t i) {
         const uint8_t* b = &q4[size_t((r * (k / 32) + i / 32) * 18)];
         uint16_t d;
         std::memcpy(&d, b, 2);
         const int j = int(i % 32), q = j < 16 ? b[2 + j] & 15 : b[2 + j - 16] >> 4;
         return double(f16_to_float(d)) * (q - 8);
       }},
      {"q8_0", [&](int t) { return import_q8_0(q8.data(), n, k, t); },
       [&](int64_t r, int64_t i) {
         const uint8_t* b = &q8[size_t((r * (k / 32) + i / 32) * 34)];
         uint16_t d;
         std::memcpy(&d, b, 2);
         return double(f16_to_float(d)) * int8_t(b[2 + i % 32]);
       }},
  };
  for (const Format& f : formats) {
    const QuantizedWeight one = f.import(1), two = f.import(2);
    EXPECT_EQ(save_weight(one), save_weight(two)) << f.name;
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < k; ++i) ASSERT_EQ(two.dequantize(r, i), f.value(r, i)) << f.name << " row " << r << " k " << i;
  }
  expect_error([&] { import_q4_0(q4.data(), n, k, 0); }, {"import_q4_0", "num_threads = 0"});
  expect_error([&] { import_awq(awq_q.data(), awq_z.data(), scales.data(), n, k, int32_t(g), 2000); },
               {"import_awq", "num_threads = 2000"});
}

}  // namespace
