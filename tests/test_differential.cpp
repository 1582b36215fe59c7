// Randomized differential test: random configurations of every op, at random CPU classes the
// host can run and 1 or 2 threads, each generated as a golden case (inputs, double-precision
// reference, derived per-element bounds: golden.hpp) and checked against the library's kernels.
//
// Seeded and time-boxed: PAGEDINFER_DIFFERENTIAL_SEED (default: random, printed) and
// PAGEDINFER_DIFFERENTIAL_SECONDS (default 45). A failure prints the case's spec, which
// `pagedinfer-golden --spec` turns back into the same file, and the CPU class it ran on.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <random>

#include "golden_run.hpp"
#include "test_util.hpp"

namespace {

using namespace pagedinfer;
using nlohmann::json;

using Rng = std::mt19937_64;

int uniform(Rng& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
bool chance(Rng& rng, double p) { return std::bernoulli_distribution(p)(rng); }
template <class T>
T pick(Rng& rng, std::initializer_list<T> xs) {
  return *(xs.begin() + uniform(rng, 0, int(xs.size()) - 1));
}
const char* any_dtype(Rng& rng) { return pick(rng, {"bf16", "f16", "f32"}); }

json attention_spec(Rng& rng) {
  const auto [hq, hkv] = pick<std::pair<int, int>>(rng, {{1, 1}, {4, 1}, {8, 2}, {6, 3}, {5, 5}, {16, 4}});
  const int dq = pick(rng, {8, 16, 64, 72, 128, 256});
  json s = {{"op", "attention"}, {"num_q_heads", hq}, {"num_kv_heads", hkv}, {"head_dim", dq},
            {"head_dim_v", chance(rng, 0.8) ? dq : pick(rng, {8, 64})}, {"page_size", pick(rng, {1, 3, 16, 64})}};
  const char* dtype = any_dtype(rng);
  const char* kv = pick(rng, {"bf16", "f16", "bf16", "f16", "f8_e4m3", "f8_e5m2", "i8"});
  s["dtype"] = dtype;
  s["kv_dtype"] = kv;
  // P rounded to bf16 only by the bf16 dot-product kernel (bf16 q and KV); the rest keep fp32.
  s["p_rounding"] = std::string(dtype) == "bf16" && std::string(kv) == "bf16" ? "bf16" : "f32";
  std::vector<int> q_lens, kv_lens;
  for (int r = uniform(rng, 1, 4); r > 0; --r) {
    const int kv_len = uniform(rng, 0, 300);
    const int kind = uniform(rng, 0, 9);  // decode, prefill, chunk of a prefill
    q_lens.push_back(kind < 7 ? std::min(kv_len, 1) : kind < 9 ? kv_len : uniform(rng, 0, kv_len));
    kv_lens.push_back(kv_len);
  }
  s["q_lens"] = q_lens;
  s["kv_lens"] = kv_lens;
  s["causal"] = chance(rng, 0.9);
  if (chance(rng, 0.3)) s["window_left"] = uniform(rng, 0, 64);
  if (chance(rng, 0.2)) s["softcap"] = float(uniform(rng, 20, 50));
  s["alibi"] = chance(rng, 0.2);
  s["sinks"] = chance(rng, 0.2);
  s["q_range"] = float(uniform(rng, 1, 4));
  return s;
}

json linear_spec(Rng& rng) {
  const std::string format = pick(rng, {"awq", "gptq", "w8a8"});
  const int g = pick(rng, {32, 64, 128});
  json s = {{"op", "linear"}, {"format", format}, {"m", pick(rng, {1, 1, 2, 5, 8, 9, 16, 17, 33})},
            {"n", 8 * uniform(rng, 1, 12)}, {"dtype", any_dtype(rng)},
            {"activations", chance(rng, 0.5) ? "float" : "int8_per_token"}};
  if (format == "w8a8") {
    s["k"] = 32 * uniform(rng, 1, 12);
  } else {
    s["group_size"] = g;
    s["k"] = g * uniform(rng, 1, 4);
  }
  if (format == "gptq") {
    s["bits"] = pick(rng, {4, 8});
    s["act_order"] = chance(rng, 0.5);
  }
  return s;
}

json rope_spec(Rng& rng) {
  const int d = pick(rng, {8, 16, 32, 40, 64, 128, 256});
  const int max_position = pick(rng, {64, 1000, 8192});
  json s = {{"op", "rope"}, {"num_tokens", uniform(rng, 1, 24)}, {"num_q_heads", uniform(rng, 1, 6)},
            {"num_kv_heads", uniform(rng, 1, 3)}, {"head_dim", d}, {"rotary_dim", 2 * uniform(rng, 2, d / 2)},
            {"style", pick(rng, {"neox", "gptj"})}, {"max_position", max_position},
            {"theta", pick(rng, {1e4, 5e5, 1e6})}, {"dtype", any_dtype(rng)}};
  const std::string scaling = pick(rng, {"none", "none", "linear", "dynamic_ntk", "yarn", "llama3"});
  s["scaling"] = scaling;
  if (scaling != "none") s["factor"] = float(uniform(rng, 2, 8));
  if (scaling != "none" && scaling != "linear") s["original_max_position"] = max_position / 4 + 1;
  return s;
}

json rms_norm_spec(Rng& rng) {
  return {{"op", "rms_norm"}, {"num_tokens", uniform(rng, 1, 12)}, {"hidden_size", uniform(rng, 1, 3000)},
          {"fused_add", chance(rng, 0.5)}, {"gemma", chance(rng, 0.2)}, {"dtype", any_dtype(rng)},
          {"weight_dtype", any_dtype(rng)}, {"eps", pick(rng, {1e-6f, 1e-5f})}};
}

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST(Differential, RandomCasesOfEveryOpMeetTheirBounds) {
  const uint64_t seed = env_or("PAGEDINFER_DIFFERENTIAL_SEED", std::random_device{}());
  const double seconds = double(env_or("PAGEDINFER_DIFFERENTIAL_SECONDS", 45));
  std::cout << "differential test: PAGEDINFER_DIFFERENTIAL_SEED=" << seed << ", " << seconds << " s" << std::endl;
  Rng rng(seed);
  std::vector<Isa> levels;
  for (int i = 0; i <= int(detected_isa()); ++i) levels.push_back(Isa(i));
  std::map<std::string, int> count;
  int failures = 0, cases = 0;
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds && failures < 5) {
    json spec;
    switch (uniform(rng, 0, 3)) {
      case 0: spec = attention_spec(rng); break;
      case 1: spec = linear_spec(rng); break;
      case 2: spec = rope_spec(rng); break;
      default: spec = rms_norm_spec(rng); break;
    }
    spec["seed"] = uint64_t(rng());
    const Isa level = levels[std::size_t(uniform(rng, 0, int(levels.size()) - 1))];
    const int threads = uniform(rng, 1, 2);
    golden::Report report;
    try {
      const golden::File f = golden::generate(spec.dump());
      testutil::CpuClass cpu(level, 0);
      report = golden::check(f, goldenrun::run_case(f, threads), 3);
    } catch (const Error& e) {
      report.pass = false;
      report.worst.clear();
      std::cout << e.what() << std::endl;
    }
    ++cases;
    ++count[spec["op"].get<std::string>()];
    if (!report.pass) {
      ++failures;
      ADD_FAILURE() << "isa " << isa_name(level) << ", " << threads << " threads, spec " << spec.dump() << "\n"
                    << report.to_string();
    }
  }
  std::cout << cases << " cases:";
  for (const auto& [op, n] : count) std::cout << " " << op << " " << n;
  std::cout << std::endl;
  // A case per second of the budget at least: natively about 50 run per second; under qemu-user
  // (the aarch64 stage, a 20 s budget beside other tests on 2 cores) 1.5-3, depending on the
  // sizes the seed draws.
  EXPECT_GE(double(cases), seconds) << "too few cases for the time budget";
}

}  // namespace
