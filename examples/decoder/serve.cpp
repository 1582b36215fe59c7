#include "serve.hpp"

#include <algorithm>
#include <cstdio>

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
