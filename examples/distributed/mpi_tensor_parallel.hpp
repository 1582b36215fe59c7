// decoder::TensorParallel over an MPI communicator (one engine rank per MPI rank), with the
// bytes and time each collective takes, for the reports.
#pragma once
#include <mpi.h>

#include <cstdint>

#include "decoder/parallel.hpp"

namespace distributed {

class MpiTensorParallel final : public decoder::TensorParallel {
 public:
  explicit MpiTensorParallel(MPI_Comm comm);
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  // MPI_Allreduce (MPI_SUM, MPI_FLOAT). Open MPI's algorithms pair the same operands on every
  // rank (recursive doubling, or a ring's reduce-scatter then all-gather), and IEEE addition
  // commutes, so every rank gets the same bits; the tests check that the ranks agree.
  void all_reduce_sum(float* data, std::size_t n) override;
  void gather_to_root(const float* send, std::size_t n, float* recv) override;
  void broadcast_from_root(int32_t* data, std::size_t n) override;

  struct Stats {
    int64_t all_reduces = 0;
    int64_t all_reduce_bytes = 0;  // payload per rank: 4 n per all_reduce_sum
    double all_reduce_seconds = 0;
  };
  const Stats& stats() const { return stats_; }
  void reset_stats() { stats_ = Stats{}; }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  Stats stats_;
};

// Throws std::runtime_error naming the call unless an MPI call returned MPI_SUCCESS.
void check_mpi(int code, const char* call);

}  // namespace distributed
