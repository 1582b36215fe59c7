// The example decoder engine (examples/decoder/) end to end: its logits against a dense,
// one-sequence-at-a-time model written here with the reference kernels; exact token agreement
// alone vs batched vs any prefill chunk vs after a prefill-to-decode transfer vs forked
// (copy-on-write); the block allocator over a long randomized run; the sampler.
#include <set>

#include "decoder/engine.hpp"
#include "decoder_reference.hpp"
#include "test_util.hpp"

namespace {

using namespace pagedinfer;
using decoder::Engine;
using decoder::EngineConfig;
using decoder::ModelConfig;
using decoder::ModelWeights;
using decoder::Request;
using testutil::request;
using testutil::run_alone;

ModelConfig tiny() {
  ModelConfig c = decoder::model_preset("tiny");
  c.qkv_bias = true;
  return c;
}

EngineConfig engine_config(int32_t chunk, LinearActivations mode = LinearActivations::int8_per_token) {
  EngineConfig e;
  e.block_size = 16;
  e.num_blocks = 256;
  e.prefill_chunk = chunk;
  e.num_threads = 2;
  e.activations = mode;
  return e;
}

class Decoder : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { weights_ = new ModelWeights(decoder::make_weights(tiny(), 7, 2)); }
  static void TearDownTestSuite() { delete weights_; }
  static ModelWeights* weights_;
};
ModelWeights* Decoder::weights_ = nullptr;

// Every sampled row of the paged, batched, chunked engine against the dense model. Both
// round activations to bf16 at the same points; they differ by fp32 against double sums, which
// may flip a bf16 rounding (2^-8 relative) here and there. Allowing five such flips on a path
// gives 2% of the logits' spread (measured: under 0.5%; a 10% error in the attention scale
// shows as 7%).
//
// The comparison needs the engine to round where the dense model rounds, so the ISA is capped
// at avx512: on avx512_bf16 the attention kernel also rounds P to bf16 (attention.hpp), which
// moves many attention outputs by one bf16 ulp; this small random model's
// logits (spread ~0.06) do not survive that many flips. That kernel is checked against the
// reference with its own error bound in test_attention.
TEST_F(Decoder, LogitsMatchADenseOneSequenceModel) {
  const testutil::IsaCap cap(std::min(detected_isa(), Isa::avx512));
  const ModelConfig c = tiny();
  for (auto mode : {LinearActivations::float_, LinearActivations::int8_per_token}) {
    Engine engine(c, *weights_, engine_config(24, mode));
    std::map<int64_t, std::vector<std::vector<float>>> seen;
    engine.on_logits = [&](int64_t id, const float* l) { seen[id].emplace_back(l, l + c.vocab); };
    for (int64_t id = 0; id < 3; ++id) engine.add_request(request(id, 40 + int32_t(id) * 13, 6, 0, 0.0f));
    engine.run_until_done();
    for (int64_t id = 0; id < 3; ++id)
      testutil::expect_logits_match_dense(c, *weights_, request(id, 40 + int32_t(id) * 13, 6, 0, 0.0f),
                                          engine.results().at(id).tokens, seen[id], mode);
  }
}

TEST_F(Decoder, SameTokensAloneBatchedAndWithAnyPrefillChunk) {
  const ModelConfig c = tiny();
  const Request target = request(9, 70, 12, 1234, 0.8f);  // sampled, not greedy: the seed matters
  const std::vector<int32_t> alone = run_alone(c, *weights_, engine_config(512), target);
  ASSERT_EQ(alone.size(), 12u);
  for (int32_t chunk : {7, 16, 512}) {
    Engine engine(c, *weights_, engine_config(chunk));
    engine.add_request(request(1, 33, 20, 5, 1.0f));
    engine.add_request(target);
    engine.step();
    engine.add_request(request(2, 90, 4, 6, 0.0f));  // joins mid-flight
    engine.run_until_done();
    EXPECT_EQ(engine.results().at(9).tokens, alone) << "prefill chunk " << chunk;
  }
}

TEST_F(Decoder, PrefillToDecodeTransferContinuesExactly) {
  const ModelConfig c = tiny();
  const Request r = request(4, 57, 10, 99, 0.7f);
  const std::vector<int32_t> alone = run_alone(c, *weights_, engine_config(16), r);
  EngineConfig hnd = engine_config(16);
  hnd.kv_hnd = true;  // the decode instance's pools have another layout
  Engine prefill(c, *weights_, engine_config(16)), decode(c, *weights_, hnd);
  prefill.add_request(r);
  while (!prefill.prefilled(4)) ASSERT_TRUE(prefill.step());
  const int64_t free_before = prefill.free_blocks();
  const std::vector<uint8_t> bytes = prefill.export_sequence(4);
  EXPECT_GT(prefill.free_blocks(), free_before);  // the blocks came back
  decode.add_request(request(5, 20, 8, 1, 0.0f));  // the decode instance is busy with others
  decode.step();
  decode.import_sequence(bytes);
  decode.run_until_done();
  EXPECT_EQ(decode.results().at(4).tokens, alone);
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(bytes.size() / 2));
  const int64_t free_blocks = decode.free_blocks();
  EXPECT_THROW(decode.import_sequence(cut), std::invalid_argument);
  std::vector<uint8_t> flipped = bytes;
  flipped[bytes.size() - 100] ^= 4;  // inside the KV pages: the checksum refuses it
  EXPECT_THROW(decode.import_sequence(flipped), std::invalid_argument);
  EXPECT_EQ(decode.free_blocks(), free_blocks);  // nothing kept
}

// Forks share the parent's blocks; the first write into the shared partial block copies it.
// A broken copy-on-write would corrupt the parent's KV and change its tokens.
TEST_F(Decoder, ForkedSequencesShareBlocksWithCopyOnWrite) {
  const ModelConfig c = tiny();
  const Request parent = request(1, 37, 9, 0, 0.0f);  // 37 tokens: the third block is partial
  const std::vector<int32_t> alone = run_alone(c, *weights_, engine_config(512), parent);
  Engine engine(c, *weights_, engine_config(512));
  const int64_t total = engine.free_blocks();
  engine.add_request(parent);
  engine.step();  // prefill and first token
  const int64_t before_fork = engine.free_blocks();
  engine.fork(1, request(2, 0, 9, 0, 0.0f));
  engine.fork(1, request(3, 0, 9, 0, 0.0f));
  // 37 + 9 tokens fit the parent's 3 blocks: the children share all three and need no more.
  EXPECT_EQ(engine.free_blocks(), before_fork);
  engine.step();  // three writers into shared block 2: the first two get copies, the last keeps it
  EXPECT_EQ(engine.free_blocks(), before_fork - 2);
  engine.run_until_done();
  for (int64_t id : {1, 2, 3}) EXPECT_EQ(engine.results().at(id).tokens, alone) << "sequence " << id;
  EXPECT_EQ(engine.free_blocks(), total);
}

TEST_F(Decoder, RandomArrivalsNeverLeakBlocks) {
  const ModelConfig c = tiny();
  EngineConfig e = engine_config(32);
  e.num_blocks = 40;  // tight: requests wait for blocks
  e.max_running = 5;
  Engine engine(c, *weights_, e);
  std::mt19937 rng(3);
  int64_t next = 0;
  for (int step = 0; step < 300; ++step) {
    if (rng() % 3 == 0) engine.add_request(request(next++, 1 + int32_t(rng() % 120), 1 + int32_t(rng() % 20), rng(), 0.5f));
    engine.step();
  }
  engine.run_until_done();
  EXPECT_EQ(int64_t(engine.results().size()), next);
  EXPECT_EQ(engine.free_blocks(), 40);
  try {
    engine.add_request(request(next, 700, 10, 0, 0.0f));  // 45 blocks: more than the pool
    ADD_FAILURE() << "no error";
  } catch (const decoder::OutOfBlocks& err) {
    EXPECT_NE(std::string(err.what()).find("the pool has 40"), std::string::npos) << err.what();
  }
}

TEST(BlockAllocator, RandomizedSharingAndReleaseKeepCounts) {
  decoder::BlockAllocator a(64);
  std::mt19937 rng(11);
  std::vector<int32_t> owned;  // one entry per reference we hold
  for (int i = 0; i < 20000; ++i) {
    const unsigned op = rng() % 3;
    if (op == 0 && a.free_blocks() > 0) owned.push_back(a.allocate());
    else if (op == 1 && !owned.empty()) {
      const int32_t b = owned[rng() % owned.size()];
      a.share(b);
      owned.push_back(b);
    } else if (!owned.empty()) {
      const size_t k = rng() % owned.size();
      a.release(owned[k]);
      owned.erase(owned.begin() + std::ptrdiff_t(k));
    }
    ASSERT_EQ(a.free_blocks() + int64_t(std::set<int32_t>(owned.begin(), owned.end()).size()), 64);
  }
  for (int32_t b : owned) a.release(b);
  EXPECT_EQ(a.free_blocks(), 64);
  EXPECT_THROW(a.release(0), std::logic_error);  // double free
  for (int i = 0; i < 64; ++i) a.allocate();
  EXPECT_THROW(a.allocate(), decoder::OutOfBlocks);
}

}  // namespace
