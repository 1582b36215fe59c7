// Disaggregated prefill / decode over two MPI ranks: rank 0 prefills (NHD pool), rank 1 decodes
// (HND pool) beside a request of its own, taking the sequences into its running batch as they
// arrive; every sequence's tokens equal the one-process engine's, and the timings and bytes
// reported are consistent.
#include "decoder/weights.hpp"
#include "decoder_reference.hpp"
#include "disaggregated.hpp"
#include "mpi_main.hpp"

namespace {

using namespace pagedinfer;
using testutil::request;

TEST(Disaggregated, DecodeRankContinuesEverySequenceExactly) {
  ASSERT_EQ(mpi_size(), 2) << "run with mpirun -np 2";
  decoder::ModelConfig c = decoder::model_preset("tiny");
  c.qkv_bias = true;
  const decoder::ModelWeights weights = decoder::make_weights(c, 7, 1);
  decoder::EngineConfig e;
  e.num_blocks = 128;
  e.prefill_chunk = 32;
  std::vector<decoder::Request> prompts;
  for (int64_t id = 0; id < 4; ++id) prompts.push_back(request(id, 25 + int32_t(id) * 30, 9, 100 + uint64_t(id), 0.7f));
  if (mpi_rank() == 0) {
    decoder::Engine prefill(c, weights, e);
    distributed::run_prefill(prefill, prompts, MPI_COMM_WORLD, 1);
    EXPECT_EQ(prefill.free_blocks(), e.num_blocks);  // every sequence left with its blocks
    return;
  }
  e.kv_hnd = true;
  decoder::Engine decode(c, weights, e);
  decode.add_request(request(50, 40, 12, 1, 0.0f));  // busy with its own request meanwhile
  const auto timings = distributed::run_decode(decode, int(prompts.size()), MPI_COMM_WORLD, 0);
  ASSERT_EQ(timings.size(), prompts.size());
  e.kv_hnd = false;
  for (const decoder::Request& r : prompts) {
    EXPECT_EQ(decode.results().at(r.id).tokens, testutil::run_alone(c, weights, e, r)) << "request " << r.id;
    const distributed::TransferTiming& t = timings.at(r.id);
    EXPECT_GT(t.prefill_seconds, 0);
    EXPECT_GT(t.first_step_seconds, 0);
    // The KV pages of the prompt's tokens in every layer (kv_transfer.hpp: 72 bytes of header and
    // checksum), plus the sequence's state.
    const int64_t pages = (int64_t(r.prompt.size()) + e.block_size - 1) / e.block_size;
    const int64_t kv = 72 + c.layers * pages * e.block_size * c.kv_heads * c.head_dim * 2 * 2;
    EXPECT_GT(t.bytes, kv);
    EXPECT_LT(t.bytes, kv + 1024);
  }
  EXPECT_EQ(decode.results().at(50).tokens, testutil::run_alone(c, weights, e, request(50, 40, 12, 1, 0.0f)));
}

}  // namespace
