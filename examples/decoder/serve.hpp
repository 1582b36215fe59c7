// The source deployments' test-script measurement: `batch` requests with prompts of `context`
// tokens arrive together; each generates `decode` tokens. Reports first-token latency (FTL),
// decode tokens per second (TPS) and the share of decode time per op.
#pragma once
#include <cstdint>
#include <string>

#include "engine.hpp"

namespace decoder {

struct ServeRun {
  int32_t batch = 8, context = 1024, decode = 32;
};

struct ServeReport {
  double ftl_mean_s = 0, ftl_max_s = 0;  // first-token latency over the requests
  double decode_tps = 0;                 // generated tokens / second, after every first token
  double decode_seconds = 0;
  int64_t decode_steps = 0;
  OpTimes decode_times;                  // per op, over the decode phase
  std::string text() const;              // the report, one line per figure
};

// Runs `run` on the engine (which must be idle) with deterministic prompts.
ServeReport serve(Engine& engine, const ServeRun& run);

}  // namespace decoder
