#include "mpi_tensor_parallel.hpp"

#include <chrono>
#include <climits>
#include <stdexcept>
#include <string>

namespace distributed {

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw std::runtime_error(std::string(call) + " failed: " + std::string(text, size_t(length)));
}

namespace {

int count_of(std::size_t n, const char* call) {
  if (n > size_t(INT_MAX)) throw std::runtime_error(std::string(call) + ": more than INT_MAX elements");
  return int(n);
}

}  // namespace

MpiTensorParallel::MpiTensorParallel(MPI_Comm comm) : comm_(comm) {
  check_mpi(MPI_Comm_rank(comm, &rank_), "MPI_Comm_rank");
  check_mpi(MPI_Comm_size(comm, &size_), "MPI_Comm_size");
}

void MpiTensorParallel::all_reduce_sum(float* data, std::size_t n) {
  const auto start = std::chrono::steady_clock::now();
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, data, count_of(n, "MPI_Allreduce"), MPI_FLOAT, MPI_SUM, comm_), "MPI_Allreduce");
  stats_.all_reduce_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats_.all_reduces += 1;
  stats_.all_reduce_bytes += int64_t(n) * 4;
}

void MpiTensorParallel::gather_to_root(const float* send, std::size_t n, float* recv) {
  const int count = count_of(n, "MPI_Gather");
  check_mpi(MPI_Gather(send, count, MPI_FLOAT, recv, count, MPI_FLOAT, 0, comm_), "MPI_Gather");
}

void MpiTensorParallel::broadcast_from_root(int32_t* data, std::size_t n) {
  check_mpi(MPI_Bcast(data, count_of(n, "MPI_Bcast"), MPI_INT32_T, 0, comm_), "MPI_Bcast");
}

}  // namespace distributed
