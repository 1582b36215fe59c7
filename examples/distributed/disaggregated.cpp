#include "disaggregated.hpp"

#include <algorithm>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>

#include "mpi_tensor_parallel.hpp"

namespace distributed {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr int kTagHeader = 1, kTagPayload = 2;
// MPI counts are int: payloads go in pieces of at most 1 GiB.
constexpr std::size_t kPiece = std::size_t(1) << 30;

// What precedes each sequence's bytes.
struct Header {
  int64_t id = 0;
  uint64_t bytes = 0;
  double prefill_seconds = 0, export_seconds = 0;
};

}  // namespace

void run_prefill(decoder::Engine& engine, const std::vector<decoder::Request>& requests, MPI_Comm comm,
                 int decode_rank) {
  for (const decoder::Request& r : requests) {
    if (r.max_new_tokens < 2)
      throw std::invalid_argument("run_prefill: request " + std::to_string(r.id) +
                                  " has max_new_tokens < 2; it would finish here, with nothing left to decode");
    engine.add_request(r);
  }
  std::set<int64_t> sent;
  std::vector<uint8_t> bytes;  // reused: its pages are faulted in once
  while (sent.size() < requests.size()) {
    if (!engine.step()) throw std::logic_error("run_prefill: the engine stopped before every prompt was prefilled");
    for (const decoder::Request& r : requests) {
      if (sent.count(r.id) || !engine.prefilled(r.id)) continue;
      Header h;
      h.id = r.id;
      h.prefill_seconds = engine.first_token_seconds(r.id);
      const auto start = Clock::now();
      engine.export_sequence(r.id, bytes);
      h.export_seconds = since(start);
      h.bytes = bytes.size();
      check_mpi(MPI_Send(&h, sizeof h, MPI_BYTE, decode_rank, kTagHeader, comm), "MPI_Send");
      for (std::size_t at = 0; at < bytes.size(); at += kPiece)
        check_mpi(MPI_Send(bytes.data() + at, int(std::min(kPiece, bytes.size() - at)), MPI_BYTE, decode_rank,
                           kTagPayload, comm),
                  "MPI_Send");
      sent.insert(r.id);
    }
  }
}

std::map<int64_t, TransferTiming> run_decode(decoder::Engine& engine, int expected, MPI_Comm comm, int prefill_rank) {
  std::map<int64_t, TransferTiming> timings;
  std::vector<int64_t> joined;  // received, not yet through their first step here
  std::vector<uint8_t> bytes;
  int received = 0;
  bool busy = true;  // the engine had work at the last step
  while (true) {
    // Take every sequence that has arrived; wait for one only when there is nothing to decode.
    while (received < expected) {
      int arrived = 0;
      MPI_Status status;
      if (busy) {
        check_mpi(MPI_Iprobe(prefill_rank, kTagHeader, comm, &arrived, &status), "MPI_Iprobe");
        if (!arrived) break;
      }
      Header h;
      check_mpi(MPI_Recv(&h, sizeof h, MPI_BYTE, prefill_rank, kTagHeader, comm, MPI_STATUS_IGNORE), "MPI_Recv");
      const auto start = Clock::now();
      bytes.resize(h.bytes);
      for (std::size_t at = 0; at < bytes.size(); at += kPiece)
        check_mpi(MPI_Recv(bytes.data() + at, int(std::min(kPiece, bytes.size() - at)), MPI_BYTE, prefill_rank,
                           kTagPayload, comm, MPI_STATUS_IGNORE),
                  "MPI_Recv");
      TransferTiming& t = timings[h.id];
      t.wire_seconds = since(start);
      t.prefill_seconds = h.prefill_seconds;
      t.export_seconds = h.export_seconds;
      t.bytes = int64_t(h.bytes);
      const auto import_start = Clock::now();
      engine.import_sequence(bytes);
      t.import_seconds = since(import_start);
      joined.push_back(h.id);
      ++received;
      busy = true;
    }
    const auto step_start = Clock::now();
    busy = engine.step();
    const double step_seconds = since(step_start);
    for (int64_t id : joined) timings[id].first_step_seconds = step_seconds;
    joined.clear();
    if (!busy && received == expected) break;
  }
  return timings;
}

}  // namespace distributed
