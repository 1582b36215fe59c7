// What the engine needs of a communication library to run tensor parallel (examples/distributed
// implements it over MPI). The engine stays free of any such library.
//
// Every rank runs the same engine on the same requests with its shard of the weights
// (shard_weights): query / KV heads and the FFN split as the deployments split them, the
// embedding and the LM head split by vocabulary. Partial hidden states are summed over the ranks
// after o_proj and after down, in fp32: the single-process engine adds the fp32 accumulators to
// the residual and rounds to bf16 once, and summing fp32 partials keeps that one rounding (bf16
// partials on the wire would add a rounding of each). Rank 0 samples and broadcasts the tokens,
// so every rank schedules the same batches.
#pragma once
#include <cstddef>
#include <cstdint>

namespace decoder {

class TensorParallel {
 public:
  virtual ~TensorParallel() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // data[0..n) = its sum over the ranks, on every rank (the same bits on every rank).
  virtual void all_reduce_sum(float* data, std::size_t n) = 0;
  // Rank 0 receives every rank's send[0..n) in rank order into recv[0 .. size() n); other
  // ranks' recv is unused.
  virtual void gather_to_root(const float* send, std::size_t n, float* recv) = 0;
  // data[0..n) of rank 0, on every rank.
  virtual void broadcast_from_root(int32_t* data, std::size_t n) = 0;
};

}  // namespace decoder
