// Disaggregated prefill / decode over MPI: a prefill rank runs prompts and sends each sequence,
// once its first token is sampled, as Engine::export_sequence bytes (its state and its KV cache
// in pagedinfer's KV transfer format); a decode rank receives it into free blocks of its own pool
// (any layout, same block size), adds it to the running batch between two steps, and decodes.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <map>
#include <vector>

#include "decoder/engine.hpp"

namespace distributed {

// Per transferred sequence, the parts of its time to first decoded token.
struct TransferTiming {
  double prefill_seconds = 0;      // prefill rank: admission to first token (Engine's first_token_seconds)
  double export_seconds = 0;       // prefill rank: export_sequence (gather the pages, checksum)
  double wire_seconds = 0;         // decode rank: from the size message to the last payload byte
  double import_seconds = 0;       // decode rank: import_sequence (validate, checksum, scatter)
  double first_step_seconds = 0;   // decode rank: the first step that decodes the sequence
  int64_t bytes = 0;               // the sequence's bytes on the wire
  double transfer_seconds() const { return export_seconds + wire_seconds + import_seconds; }
};

// Runs on the prefill rank: prefills `requests` (each max_new_tokens >= 2, so that it is still
// running when its first token is sampled) as one continuous batch and sends each finished
// prefill to `decode_rank`, in the order they finish.
void run_prefill(decoder::Engine& engine, const std::vector<decoder::Request>& requests, MPI_Comm comm,
                 int decode_rank);

// Runs on the decode rank: decodes what the engine already holds while it receives `expected`
// sequences from `prefill_rank`, then runs until done. Returns each received sequence's timing.
std::map<int64_t, TransferTiming> run_decode(decoder::Engine& engine, int expected, MPI_Comm comm, int prefill_rank);

}  // namespace distributed
