// RMSNorm on Llama-3-8B shapes (hidden 4096, bf16 activations and weight), 1 and 512 tokens,
// 1 and 2 threads. Memory-bound: bw_fraction counts every byte read and written once (the
// activations, the weight). Iterations rotate over copies of the activations that together
// exceed 8x the L3, so each call reads from DRAM ("cold"); the write-allocate reads of an
// out-of-place output are not counted, so DRAM moves more than reported there.
//   rmsnorm_t*              out = rmsnorm(x), out of place (vLLM's rms_norm)
//   rmsnorm_inplace_t*      x = rmsnorm(x)
//   fused_add_rmsnorm_t*    residual += x; x = rmsnorm(residual)  (vLLM's fused_add_rms_norm)
//   qk_rmsnorm_t*           per-head norm of 32 q + 8 k heads of 128 (Qwen3), in place
#include <benchmark/benchmark.h>

#include <string>

#include "pagedinfer/pagedinfer.hpp"
#include "roofline.hpp"

using namespace pagedinfer;

namespace {

constexpr int32_t kHidden = 4096, kHeads = 40, kHeadDim = 128;

enum class Op { out_of_place, in_place, fused_add, qk };

// `tensors` activation tensors of [tokens, row] bf16 per copy, rotated over.
struct Arena {
  std::size_t tensor_bytes, copy_bytes, copies;
  bench::Bytes data;
  Arena(int64_t tokens, int64_t row, int tensors)
      : tensor_bytes(std::size_t(tokens * row) * 2),
        copy_bytes(tensor_bytes * std::size_t(tensors)),
        copies(bench::cold_copies(double(copy_bytes))),
        data(bench::alloc(copy_bytes * copies)) {
    bench::fill_bf16(reinterpret_cast<uint16_t*>(data.get()), copy_bytes * copies / 2, 11);
  }
  void* tensor(std::size_t copy, int i) { return data.get() + copy * copy_bytes + std::size_t(i) * tensor_bytes; }
};

void run(benchmark::State& s, Op op, int64_t tokens, int threads) {
  const int tensors = op == Op::in_place || op == Op::qk ? 1 : 2;
  const int64_t row = op == Op::qk ? kHeads * kHeadDim : kHidden;
  Arena arena(tokens, row, tensors);
  std::vector<uint16_t> weight(kHidden);
  bench::fill_bf16(weight.data(), weight.size(), 12);
  RmsNormParams p;
  p.num_tokens = tokens;
  p.dim = op == Op::qk ? kHeadDim : kHidden;
  p.num_heads = op == Op::qk ? kHeads : 1;
  p.weight = weight.data();
  p.num_threads = threads;
  std::size_t c = 0;
  for (auto _ : s) {
    void* a = arena.tensor(c, 0);
    void* b = tensors > 1 ? arena.tensor(c, 1) : a;
    switch (op) {
      case Op::out_of_place:
        p.input = {a, DType::bf16, kHidden, kHidden};
        p.output = {b, DType::bf16, kHidden, kHidden};
        rms_norm(p);
        break;
      case Op::in_place:
      case Op::qk:
        p.input = {a, DType::bf16, row, kHeadDim};
        p.output = {a, DType::bf16, row, kHeadDim};
        rms_norm(p);
        break;
      case Op::fused_add:
        p.input = {a, DType::bf16, kHidden, kHidden};
        p.output = {a, DType::bf16, kHidden, kHidden};
        p.residual = {b, DType::bf16, kHidden, kHidden};
        fused_add_rms_norm(p);
        break;
    }
    c = (c + 1) % arena.copies;
  }
  // Read and written: each tensor once each way, except the out-of-place input (read only)
  // and output (written only).
  const double moved = op == Op::fused_add ? 4.0 : 2.0;
  bench::report_bytes(s, moved * double(arena.tensor_bytes) + double(p.dim) * 2, threads);
  s.SetLabel(std::string("kernel=") + rms_norm_kernel_name(DType::bf16, DType::bf16) + " ceiling=dram");
}

void register_all() {
  const std::pair<const char*, Op> ops[] = {{"rmsnorm", Op::out_of_place},
                                            {"rmsnorm_inplace", Op::in_place},
                                            {"fused_add_rmsnorm", Op::fused_add},
                                            {"qk_rmsnorm", Op::qk}};
  for (auto [name, op] : ops)
    for (int64_t tokens : {1, 512})
      for (int t : {1, 2}) {
        const std::string tag = std::string("norm/") + name + "_t" + std::to_string(tokens) +
                                "/bf16/threads:" + std::to_string(t) + "/cold";
        benchmark::RegisterBenchmark(tag.c_str(), run, op, tokens, t)->UseRealTime();
      }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmarks(argc, argv, register_all); }
