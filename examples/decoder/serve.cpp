#include "serve.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "engine_internal.hpp"

namespace decoder {

ServeReport serve(Engine& engine, const ServeRun& run) {
  const int32_t vocab = engine.model().vocab;
  for (int32_t r = 0; r < run.batch; ++r) {
    Request q;
    q.id = r;
    for (int32_t i = 0; i < run.context; ++i) q.prompt.push_back(int32_t((uint32_t(r) * 7919u + uint32_t(i) * 104729u) % uint32_t(vocab)));
    q.max_new_tokens = run.decode;
    engine.add_request(q);
  }
  ServeReport rep;
  // Prefill phase: until every request has its first token.
  const auto all_started = [&] {
    for (int32_t r = 0; r < run.batch; ++r)
      if (!engine.prefilled(r) && !engine.finished(r)) return false;
    return true;
  };
  while (!all_started() && engine.step()) {
  }
  engine.reset_times();
  const auto t0 = Clock::now();
  int64_t steps = 0;
  while (engine.step()) ++steps;
  rep.decode_seconds = seconds_between(t0, Clock::now());
  rep.decode_steps = steps;
  rep.decode_times = engine.times();
  int64_t generated_after_first = 0;
  for (int32_t r = 0; r < run.batch; ++r) {
    const Result& res = engine.results().at(r);
    rep.ftl_mean_s += res.first_token_seconds / run.batch;
    rep.ftl_max_s = std::max(rep.ftl_max_s, res.first_token_seconds);
    generated_after_first += int64_t(res.tokens.size()) - 1;
  }
  rep.decode_tps = rep.decode_seconds > 0 ? double(generated_after_first) / rep.decode_seconds : 0;
  return rep;
}

ModelConfig ServeOptions::model_config() const {
  ModelConfig mc = model_preset(model);
  if (layers > 0) mc.layers = layers;
  mc.distinct_layers = distinct_layers;
  mc.weight_bits = bits;
  return mc;
}

EngineConfig ServeOptions::engine_config() const {
  EngineConfig ec;
  ec.prefill_chunk = chunk;
  ec.num_threads = threads;
  ec.max_batch_tokens = std::max(chunk, batch) + batch;
  ec.activations = activations == "float" ? pagedinfer::LinearActivations::float_
                                          : pagedinfer::LinearActivations::int8_per_token;
  ec.num_blocks = int64_t(batch) * ((context + decode + ec.block_size - 1) / ec.block_size + 1);
  return ec;
}

bool parse_serve_flags(int argc, char** argv, ServeOptions& o,
                       const std::function<bool(const std::string&, const std::string&)>& extra) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    int* number = flag == "--layers"            ? &o.layers
                  : flag == "--distinct-layers" ? &o.distinct_layers
                  : flag == "--batch"           ? &o.batch
                  : flag == "--context"         ? &o.context
                  : flag == "--decode"          ? &o.decode
                  : flag == "--chunk"           ? &o.chunk
                  : flag == "--threads"         ? &o.threads
                  : flag == "--bits"            ? &o.bits
                                                : nullptr;
    if (number) *number = std::atoi(value.c_str());
    else if (flag == "--model") o.model = value;
    else if (flag == "--activations") o.activations = value;
    else if (!extra || !extra(flag, value)) {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return false;
    }
  }
  return true;
}

std::string ServeReport::text() const {
  const OpTimes& t = decode_times;
  const double step = t.step > 0 ? t.step : 1;
  char buf[1024];
  std::snprintf(buf, sizeof buf,
                "first-token latency: mean %.3f s, max %.3f s\n"
                "decode: %.1f tokens/s over %lld steps (%.3f s)\n"
                "decode time by op: gemm %.1f%%, attention %.1f%%, norm %.1f%%, rope+kv append %.1f%%, "
                "embedding %.1f%%, sampling %.1f%%, tensor-parallel collectives %.1f%%; "
                "glue (scheduling, copies, allocation) %.1f%%\n",
                ftl_mean_s, ftl_max_s, decode_tps, static_cast<long long>(decode_steps), decode_seconds,
                100 * t.gemm / step, 100 * t.attention / step, 100 * t.norm / step, 100 * t.rope / step,
                100 * t.embed / step, 100 * t.sampling / step, 100 * t.all_reduce / step,
                100 * (step - t.kernels() - t.all_reduce) / step);
  return buf;
}

}  // namespace decoder
