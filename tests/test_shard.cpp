// Tensor-parallel shards of packed weights: every element of every shard is the whole weight's
// element it maps to (so the shards' outputs, concatenated or summed, are the weight's), over
// formats, gate_up, QKV segments, act-order and rank counts; shards save and load; errors.
// test_linear runs every kernel on shards, padded act-order ones included.
#include "test_util.hpp"

namespace {

using namespace pagedinfer;
using testutil::expect_error;

QuantizedWeight quantized(int64_t n, int64_t k, QuantFormat f, bool gate_up, std::mt19937& rng) {
  const std::vector<float> w = testutil::random_weights(n, k, rng, 0.02f);
  QuantizeOptions o(f);
  o.gate_up = gate_up;
  return quantize(w.data(), DType::f32, n, k, k, o);
}

// Shard row r of rank `rank` reads this weight row (output shards).
int64_t source_row(const std::vector<int64_t>& segments, int rank, int ranks, int64_t r) {
  int64_t offset = 0;
  for (int64_t part : segments) {
    const int64_t each = part / ranks;
    if (r < each) return offset + rank * each + r;
    r -= each;
    offset += part;
  }
  return -1;
}

void expect_same_element(const QuantizedWeight& shard, int64_t r, int64_t i, const QuantizedWeight& w, int64_t wr,
                         int64_t wi) {
  ASSERT_EQ(shard.q(r, i), w.q(wr, wi)) << r << "," << i;
  ASSERT_EQ(shard.scale(r, i), w.scale(wr, wi)) << r << "," << i;
  ASSERT_EQ(shard.offset(r, i), w.offset(wr, wi)) << r << "," << i;
}

void check_output_shards(const QuantizedWeight& w, std::vector<int64_t> segments, int ranks) {
  SCOPED_TRACE(testing::Message() << "ranks " << ranks);
  const std::vector<int64_t> given = segments;
  if (segments.empty()) segments = w.gate_up() ? std::vector<int64_t>{w.n() / 2, w.n() / 2} : std::vector<int64_t>{w.n()};
  for (int rank = 0; rank < ranks; ++rank) {
    const QuantizedWeight s = shard_output_features(w, rank, ranks, given, 2);
    ASSERT_EQ(s.n(), w.n() / ranks);
    ASSERT_EQ(s.k(), w.k());
    EXPECT_EQ(s.gate_up(), w.gate_up());
    EXPECT_EQ(s.act_order(), w.act_order());
    for (int64_t r = 0; r < s.n(); ++r)
      for (int64_t i = 0; i < s.k(); ++i) {
        expect_same_element(s, r, i, w, source_row(segments, rank, ranks, r), i);
        if (testing::Test::HasFatalFailure()) return;
      }
  }
}

void check_input_shards(const QuantizedWeight& w, int ranks) {
  SCOPED_TRACE(testing::Message() << "ranks " << ranks);
  const int64_t width = w.k() / ranks;
  for (int rank = 0; rank < ranks; ++rank) {
    const QuantizedWeight s = shard_input_features(w, rank, ranks, 2);
    ASSERT_EQ(s.n(), w.n());
    ASSERT_EQ(s.k(), width);
    for (int64_t r = 0; r < s.n(); ++r)
      for (int64_t i = 0; i < width; ++i) {
        expect_same_element(s, r, i, w, r, rank * width + i);
        if (testing::Test::HasFatalFailure()) return;
      }
    // A shard survives the file format, padded act-order groups included.
    const std::vector<uint8_t> bytes = save_weight(s);
    EXPECT_EQ(save_weight(load_weight(bytes.data(), bytes.size())), bytes);
  }
}

TEST(Shard, OutputFeaturesKeepEverySegmentsPart) {
  std::mt19937 rng(1);
  // QKV of 4 query heads and 2 KV heads of 32 (odd tiles: 64 + 32 + 32 rows).
  const QuantizedWeight qkv = quantized(128, 256, QuantFormat{4, 128, QuantZero::zero_point}, false, rng);
  for (int ranks : {1, 2}) check_output_shards(qkv, {64, 32, 32}, ranks);
  const QuantizedWeight plain = quantized(96, 200, QuantFormat{8, 0, QuantZero::symmetric}, false, rng);
  for (int ranks : {2, 3, 4}) check_output_shards(plain, {}, ranks);
  const QuantizedWeight gate_up = quantized(2 * 80, 128, QuantFormat{4, 32, QuantZero::float_offset}, true, rng);
  for (int ranks : {2, 5}) check_output_shards(gate_up, {}, ranks);
  const QuantizedWeight gptq = testutil::random_act_order_gptq(64, 256, 4, 64, rng);
  check_output_shards(gptq, {32, 32}, 2);
}

TEST(Shard, InputFeaturesHoldWholeGroupsOrPaddedActOrderRuns) {
  std::mt19937 rng(2);
  const QuantizedWeight grouped = quantized(40, 512, QuantFormat{4, 128, QuantZero::zero_point}, false, rng);
  for (int ranks : {1, 2, 4}) check_input_shards(grouped, ranks);
  const QuantizedWeight channel = quantized(33, 300, QuantFormat{8, 0, QuantZero::symmetric}, false, rng);
  for (int ranks : {2, 3, 4}) check_input_shards(channel, ranks);  // 100 / 75 columns: padded words
  for (int bits : {4, 8}) {
    const QuantizedWeight gptq = testutil::random_act_order_gptq(48, 512, bits, 128, rng);
    for (int ranks : {2, 4}) check_input_shards(gptq, ranks);
    // Each rank's runs are padded to groups of 32 at most 31 deep per source group.
    const QuantizedWeight s = shard_input_features(gptq, 0, 2);
    EXPECT_TRUE(s.act_order());
    EXPECT_EQ(s.group_size(), 32);
    EXPECT_LE(s.bytes(), gptq.bytes());
  }
}

TEST(Shard, ActOrderWithoutSpreadGroupsNeedsNoPadding) {
  // GPTQ with a sorted g_idx (desc_act off but g_idx stored): whole groups per rank, group kept.
  std::mt19937 rng(3);
  const int64_t n = 32, k = 256;
  std::vector<int32_t> qweight(size_t(k / 8 * n), 0x12345678), qzeros(size_t(k / 128 * n / 8), 0x11111111), g_idx(static_cast<size_t>(k));
  std::vector<uint16_t> scales(size_t(k / 128 * n), float_to_f16(0.01f));
  for (int64_t i = 0; i < k; ++i) g_idx[size_t(i)] = int32_t(i / 128);
  const QuantizedWeight w = import_gptq(qweight.data(), qzeros.data(), scales.data(), g_idx.data(), n, k, 4, 128);
  const QuantizedWeight s = shard_input_features(w, 1, 2);
  EXPECT_EQ(s.group_size(), 128);
  EXPECT_EQ(s.bytes() * 2, w.bytes());
  check_input_shards(w, 2);
}

TEST(Shard, ErrorsNameTheRule) {
  std::mt19937 rng(4);
  const QuantizedWeight w = quantized(96, 256, QuantFormat{4, 128, QuantZero::zero_point}, false, rng);
  expect_error([&] { shard_output_features(w, 2, 2); }, {"shard_output_features", "rank = 2", "[0, ranks = 2)"});
  expect_error([&] { shard_output_features(w, 0, 0); }, {"ranks = 0", ">= 1"});
  expect_error([&] { shard_output_features(w, 0, 5); }, {"segments[0] = 96", "divide by ranks = 5"});
  expect_error([&] { shard_output_features(w, 0, 2, {64, 16}); }, {"add up to 80", "n = 96"});
  expect_error([&] { shard_input_features(w, 0, 3); }, {"shard_input_features", "k = 256", "divide by ranks = 3"});
  expect_error([&] { shard_input_features(w, 0, 4); }, {"k / ranks = 64", "multiple of the group size 128"});
  expect_error([&] { shard_input_features(w, 0, 2, 0); }, {"num_threads = 0"});
  const QuantizedWeight gu = quantized(64, 128, QuantFormat{4, 128, QuantZero::zero_point}, true, rng);
  expect_error([&] { shard_output_features(gu, 0, 2, {16, 16, 32}); }, {"gate_up", "two equal segments"});
  expect_error([&] { shard_input_features(QuantizedWeight(), 0, 1); }, {"empty"});
}

}  // namespace
