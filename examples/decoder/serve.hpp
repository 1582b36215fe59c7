// The source deployments' test-script measurement: `batch` requests with prompts of `context`
// tokens arrive together; each generates `decode` tokens. Reports first-token latency (FTL),
// decode tokens per second (TPS) and the share of decode time per op.
#pragma once
#include <cstdint>
#include <functional>
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

// The flags the serving programs share, with the caller's defaults:
//   --model tiny|qwen2-7b|llama3-8b --layers N --distinct-layers N --batch B --context C
//   --decode D --chunk N --threads T --bits 4|8 --activations int8|float
struct ServeOptions {
  std::string model = "tiny", activations = "int8";
  int layers = 0, distinct_layers = 0, batch = 8, context = 256, decode = 32, chunk = 512, threads = 2, bits = 4;

  ModelConfig model_config() const;    // the preset with layers, distinct layers and bits applied
  EngineConfig engine_config() const;  // chunk, threads, activations; blocks and batch tokens for the run
  ServeRun run() const { return {batch, context, decode}; }
};

// Reads "--flag value" pairs into `options`; a flag it does not know goes to `extra` (a
// program's own flags), which returns false if it does not know it either. Prints the unknown
// flag and returns false then.
bool parse_serve_flags(int argc, char** argv, ServeOptions& options,
                       const std::function<bool(const std::string& flag, const std::string& value)>& extra = {});

}  // namespace decoder
