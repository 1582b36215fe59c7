// The decoder engine tensor parallel over the MPI job's ranks (2 or 4): its logits against the
// dense one-process model, its greedy tokens against the one-process engine, batch invariance
// within the parallel engine, every rank agreeing, and the all-reduce giving every rank the same
// bits.
#include <map>
#include <random>

#include "decoder/weights.hpp"
#include "decoder_reference.hpp"
#include "mpi_main.hpp"
#include "mpi_tensor_parallel.hpp"

namespace {

using namespace pagedinfer;
using decoder::Engine;
using decoder::EngineConfig;
using decoder::ModelConfig;
using decoder::ModelWeights;
using testutil::request;

// Heads, KV heads, FFN and vocabulary divide by 4; int4 g128 weights where each rank's o_proj
// and down inputs are whole groups (2 ranks), int8 per-channel otherwise.
ModelConfig model(int ranks) {
  ModelConfig c = decoder::model_preset("tiny");
  c.hidden = 256;
  c.heads = 8;
  c.kv_heads = 4;
  c.head_dim = 32;
  c.intermediate = 512;
  c.qkv_bias = true;
  c.weight_bits = (c.q_size() / ranks) % 128 == 0 ? 4 : 8;
  return c;
}

EngineConfig engine_config(int32_t chunk, LinearActivations mode, decoder::TensorParallel* tp) {
  EngineConfig e;
  e.num_blocks = 256;
  e.prefill_chunk = chunk;
  e.num_threads = 1;
  e.activations = mode;
  e.tensor_parallel = tp;
  return e;
}

class TensorParallel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tp_ = new distributed::MpiTensorParallel(MPI_COMM_WORLD);
    const ModelConfig c = model(tp_->size());
    whole_ = new ModelWeights(decoder::make_weights(c, 11, 1));
    shard_ = new ModelWeights(decoder::shard_weights(c, *whole_, tp_->rank(), tp_->size(), 1));
  }
  static void TearDownTestSuite() {
    delete shard_;
    delete whole_;
    delete tp_;
  }
  static distributed::MpiTensorParallel* tp_;
  static ModelWeights *whole_, *shard_;
};
distributed::MpiTensorParallel* TensorParallel::tp_ = nullptr;
ModelWeights* TensorParallel::whole_ = nullptr;
ModelWeights* TensorParallel::shard_ = nullptr;

// Rank 0's logits against the dense model, with test_decoder's bound (five bf16 flips on a
// path: 2% of the logits' spread). Tensor parallelism changes only the fp32 order of the
// o_proj and down sums (partials added across ranks), far below one bf16 flip. Float
// activations: with int8 ones each rank would quantize its own slice of x, which the dense model
// does not. The ISA is capped at avx512 for the reason test_decoder gives.
TEST_F(TensorParallel, LogitsMatchTheDenseModel) {
  const testutil::IsaCap cap(std::min(detected_isa(), Isa::avx512));
  const ModelConfig c = model(tp_->size());
  Engine engine(c, *shard_, engine_config(24, LinearActivations::float_, tp_));
  std::map<int64_t, std::vector<std::vector<float>>> seen;
  engine.on_logits = [&](int64_t id, const float* l) { seen[id].emplace_back(l, l + c.vocab); };
  for (int64_t id = 0; id < 3; ++id) engine.add_request(request(id, 30 + int32_t(id) * 11, 5, 0, 0.0f));
  engine.run_until_done();
  if (tp_->rank() != 0) return;
  for (int64_t id = 0; id < 3; ++id)
    testutil::expect_logits_match_dense(c, *whole_, request(id, 30 + int32_t(id) * 11, 5, 0, 0.0f),
                                        engine.results().at(id).tokens, seen[id], LinearActivations::float_);
}

// Greedy tokens equal the one-process engine's, with float activations (where the two differ
// only in fp32 summation order; these requests' top two logits are far apart).
TEST_F(TensorParallel, GreedyTokensMatchOneProcess) {
  const ModelConfig c = model(tp_->size());
  Engine parallel(c, *shard_, engine_config(16, LinearActivations::float_, tp_));
  for (int64_t id = 0; id < 4; ++id) parallel.add_request(request(id, 20 + int32_t(id) * 9, 8, 0, 0.0f));
  parallel.run_until_done();
  if (tp_->rank() != 0) return;
  for (int64_t id = 0; id < 4; ++id)
    EXPECT_EQ(parallel.results().at(id).tokens,
              testutil::run_alone(c, *whole_, engine_config(16, LinearActivations::float_, nullptr),
                                  request(id, 20 + int32_t(id) * 9, 8, 0, 0.0f)))
        << "request " << id;
}

// Within the parallel engine, a sampled sequence decodes to the same tokens alone, batched with
// others and with any prefill chunk (int8 activations: every row's numbers are its own), and
// every rank holds the same results.
TEST_F(TensorParallel, SameTokensAloneBatchedOnEveryRank) {
  const ModelConfig c = model(tp_->size());
  const LinearActivations mode = LinearActivations::int8_per_token;
  const decoder::Request target = request(9, 45, 10, 1234, 0.8f);
  const std::vector<int32_t> alone = testutil::run_alone(c, *shard_, engine_config(512, mode, tp_), target);
  for (int32_t chunk : {7, 512}) {
    Engine engine(c, *shard_, engine_config(chunk, mode, tp_));
    engine.add_request(request(1, 33, 14, 5, 1.0f));
    engine.add_request(target);
    engine.step();
    engine.add_request(request(2, 60, 4, 6, 0.0f));  // joins mid-flight
    engine.run_until_done();
    EXPECT_EQ(engine.results().at(9).tokens, alone) << "prefill chunk " << chunk;
    // Every rank's tokens equal rank 0's.
    for (int64_t id : {1, 2, 9}) {
      std::vector<int32_t> tokens = engine.results().at(id).tokens, root = tokens;
      MPI_Bcast(root.data(), int(root.size()), MPI_INT32_T, 0, MPI_COMM_WORLD);
      EXPECT_EQ(tokens, root) << "rank " << tp_->rank() << " request " << id;
    }
  }
}

// Sums of every size (Open MPI picks other algorithms for large messages) are the same bits on
// every rank.
TEST_F(TensorParallel, AllReduceGivesEveryRankTheSameBits) {
  for (std::size_t n : {std::size_t(1), std::size_t(3584), std::size_t(1) << 20}) {
    std::mt19937 rng(uint32_t(7 + tp_->rank()));
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> data(n);
    for (float& v : data) v = u(rng) * std::ldexp(1.0f, int(rng() % 20) - 10);
    tp_->all_reduce_sum(data.data(), n);
    std::vector<float> root = data;
    MPI_Bcast(root.data(), int(n), MPI_FLOAT, 0, MPI_COMM_WORLD);
    EXPECT_EQ(std::memcmp(data.data(), root.data(), n * 4), 0) << "rank " << tp_->rank() << " n " << n;
  }
}

TEST(TensorParallelShapes, AModelThatDoesNotDivideIsRefused) {
  ModelConfig c = decoder::model_preset("tiny");
  c.kv_heads = 3;
  c.heads = 6;
  EXPECT_THROW(c.shard(2), std::invalid_argument);
  try {
    c.shard(2);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("kv_heads = 3"), std::string::npos) << e.what();
  }
}

}  // namespace
