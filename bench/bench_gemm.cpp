// Linear layers on Llama-3-8B shapes (N x K = 4096 x 4096, 14336 x 4096, 4096 x 14336), bf16
// activations and output, int4 g128 weights with zero points, int8 per-channel or bf16 weights:
//   w4a16 / w8a16   float activations (bf16 dot products; AMX bf16 tiles where the CPU has them;
//                   one row on Intel cores: fixed point on VNNI, linear.hpp)
//   w16a16          unquantized bf16 weights, bf16 dot products
//   w4a8  / w8a8    dynamic per-token int8 activations (VNNI; AMX int8 tiles where the CPU has
//                   them), quantization included in the time
// Every case reports bw_fraction (weight, x and y bytes against the same-run DRAM read
// bandwidth) and peak_fraction (2 M N K against the same-run peak of the unit the call runs
// on, as linear_unit() reports it: AMX int8 / bf16 tiles, VNNI, bf16 dot or fp32 FMA). M = 1
// and 8 are memory-bound: the weights rotate over copies larger than 8x the L3 ("cold"). M >= 32
// is compute-bound; its weights stay in cache as they would across the row blocks of one call
// ("hot").
// The decode tags (M = 1, 8 and 32 on 14336 x 4096) also run as *_vs_stream: timed alternately
// with a plain read of as many bytes, whose ratio (bw_fraction_alternated) is the one to compare
// with the bandwidth targets.
// Same-run baselines: Eigen's fp32 GEMM (eigen_f32_*) and, when built with oneDNN, its u8 x s8
// matmul with s32 accumulation and fp32 output (onednn_w8a8_*) and its bf16 matmul with bf16
// output (onednn_w16a16_*), on the same shapes; w8a8_vs_onednn and w16a16_vs_onednn alternate
// the two.
#include <benchmark/benchmark.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <omp.h>

#ifdef PAGEDINFER_BENCH_ONEDNN
#include <dnnl.hpp>
#endif

#include "pagedinfer/pagedinfer.hpp"
#include "roofline.hpp"

using namespace pagedinfer;

namespace {

struct Variant {
  const char* name;
  int bits;  // 40: llama.cpp Q4_0 blocks (int4, group 32, symmetric) through import_q4_0
  LinearActivations mode;
};
constexpr int kQ4_0 = 40;
constexpr Variant kVariants[] = {{"w4a16", 4, LinearActivations::float_},
                                 {"w8a16", 8, LinearActivations::float_},
                                 {"w4a8", 4, LinearActivations::int8_per_token},
                                 {"w8a8", 8, LinearActivations::int8_per_token},
                                 {"w16a16", 16, LinearActivations::float_}};
constexpr Variant kW16A16 = kVariants[4];
constexpr Variant kW8A8 = kVariants[3];
// A GGUF user's weights: Q4_0 imported, on the W4A8 and W4A16 paths (decode, M = 1).
constexpr Variant kQ4_0Variants[] = {{"q4_0_w4a8", kQ4_0, LinearActivations::int8_per_token},
                                     {"q4_0_w4a16", kQ4_0, LinearActivations::float_}};

// One quantized weight per (bits, N, K), from random bf16 values; copies are made through
// save/load, so each has its own memory.
const QuantizedWeight& weight(int bits, int64_t n, int64_t k) {
  static std::map<std::tuple<int, int64_t, int64_t>, QuantizedWeight> cache;
  auto key = std::make_tuple(bits, n, k);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (bits == kQ4_0) {  // random blocks: an fp16 scale, 16 bytes of nibbles
    std::vector<uint8_t> blocks(size_t(n * k / 32 * 18));
    bench::fill_random(blocks.data(), blocks.size(), uint64_t(n + k));
    for (size_t b = 0; b < blocks.size() / 18; ++b) {
      const uint16_t d = float_to_f16(0.001f * float(1 + b % 13));
      std::memcpy(&blocks[b * 18], &d, 2);
    }
    return cache[key] = import_q4_0(blocks.data(), n, k, 2);
  }
  std::vector<uint16_t> w(size_t(n * k));
  bench::fill_bf16(w.data(), w.size(), uint64_t(n * 31 + k + bits));
  // int4: AWQ/GPTQ's g128 with zero points; int8: per-channel symmetric, as W8A8 and W8A16
  // checkpoints (SmoothQuant, compressed-tensors) are; 16: the bf16 values as they are.
  const QuantFormat f = bits == 4   ? QuantFormat{4, 128, QuantZero::zero_point}
                        : bits == 8 ? QuantFormat{8, 0, QuantZero::symmetric}
                                    : QuantFormat::unquantized(DType::bf16);
  return cache[key] = quantize(w.data(), DType::bf16, n, k, k, f);
}

// One linear() call's buffers: M x K bf16 x, bf16 y, the workspace, and `copies` copies of the
// weight to rotate over.
struct LinearCall {
  std::vector<QuantizedWeight> weights;
  bench::Bytes x, y, ws;
  LinearParams p;
  std::size_t next = 0;

  LinearCall(Variant v, int64_t m, int64_t n, int64_t k, int threads, std::size_t copies) : weights(copies) {
    const QuantizedWeight& base = weight(v.bits, n, k);
    const std::vector<uint8_t> packed = save_weight(base);
    for (auto& w : weights) w = load_weight(packed.data(), packed.size());
    x = bench::alloc(size_t(m * k) * 2);
    y = bench::alloc(size_t(m * n) * 2);
    bench::fill_bf16(reinterpret_cast<uint16_t*>(x.get()), size_t(m * k), 5);
    p.m = m;
    p.x.data = x.get();
    p.x.dtype = DType::bf16;
    p.k = k;
    p.x.stride_token = k;
    p.y.data = y.get();
    p.y.dtype = DType::bf16;
    p.y.stride_token = n;
    p.activations = v.mode;
    p.num_threads = threads;
    const std::size_t ws_bytes = linear_workspace_size(base, p);
    ws = bench::alloc(ws_bytes);
    p.workspace = ws.get();
    p.workspace_bytes = ws_bytes;
  }
  void operator()() {
    linear(weights[next], p);
    next = (next + 1) % weights.size();
  }
};

// The same-run peak of the unit a call runs on (linear_unit()).
double unit_peak(LinearUnit unit, int threads) {
  const auto& ceil = bench::ceilings(threads);
  switch (unit) {
    case LinearUnit::amx_int8: return ceil.amx_int8_gops;
    case LinearUnit::amx_bf16: return ceil.amx_bf16_gflops;
    case LinearUnit::int8_dot:
    case LinearUnit::int32_vector: return ceil.int8_dot_gops;
    case LinearUnit::bf16_dot: return ceil.bf16_dot_gflops;
    case LinearUnit::fp32_fma: return ceil.fp32_fma_gflops;
  }
  return 0;
}

void run_linear(benchmark::State& s, Variant v, int64_t m, int64_t n, int64_t k, int threads) {
  const QuantizedWeight& base = weight(v.bits, n, k);
  const bool cold = m <= 8;
  LinearCall call(v, m, n, k, threads, cold ? bench::cold_copies(double(base.bytes())) : 1);
  for (auto _ : s) call();
  bench::report_bytes(s, double(base.bytes()) + double(m * (k + n)) * 2, threads);
  const LinearUnit unit = linear_unit(base, call.p);
  bench::report_flops(s, 2.0 * double(m * n * k), unit_peak(unit, threads));
  s.counters["cold"] = cold ? 1 : 0;
  s.counters["flops_per_byte"] = 2.0 * double(m * n * k) / (double(base.bytes()) + double(m * (k + n)) * 2);
  s.SetLabel(std::string("kernel=") + linear_kernel_name(base, call.p) + " unit=" + linear_unit_name(unit));
}

// A memory-bound case timed alternately with the DRAM read ceiling's loop over the same bytes
// (bench::StreamRead): bw_fraction_alternated = the stream's median time / ours, our fraction of
// the bandwidth the machine gave at the same moments. bw_fraction divides by a ceiling measured
// at start-up: over three runs of one build it read 0.62, 1.34 and 0.96 for W4A16 here.
void run_versus_stream(benchmark::State& s, Variant v, int64_t m, int64_t n, int64_t k, int threads) {
  const QuantizedWeight& base = weight(v.bits, n, k);
  const double bytes = double(base.bytes()) + double(m * (k + n)) * 2;
  LinearCall ours(v, m, n, k, threads, bench::cold_copies(double(base.bytes())));
  bench::StreamRead stream(std::size_t(bytes), threads);
  s.counters["bw_fraction_alternated"] = bench::time_against(s, ours, stream) * double(stream.bytes()) / bytes;
  bench::report_bytes(s, bytes, threads);
  s.counters["flops_per_byte"] = 2.0 * double(m * n * k) / bytes;
  s.SetLabel(std::string("kernel=") + linear_kernel_name(base, ours.p) + " ceiling=dram_alternated");
}

void run_eigen(benchmark::State& s, int64_t m, int64_t n, int64_t k, int threads) {
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Mat x = Mat::Random(m, k), w = Mat::Random(n, k), y(m, n);
  Eigen::setNbThreads(threads);
  for (auto _ : s) {
    y.noalias() = x * w.transpose();
    benchmark::DoNotOptimize(y.data());
  }
  bench::report_flops(s, 2.0 * double(m * n * k), bench::ceilings(threads).fp32_fma_gflops);
  s.SetLabel("kernel=eigen unit=fp32_fma");
}

#ifdef PAGEDINFER_BENCH_ONEDNN
// oneDNN's matmul with the weights in the layout it picks (reordered once, outside the timing):
// int8: u8 x s8 (s32 accumulation, one output scale, fp32 out), activations already u8;
// bf16: bf16 x bf16 with bf16 out.
struct OnednnMatmul {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::memory a, b, c;
  dnnl::matmul prim;

  OnednnMatmul(int64_t m, int64_t n, int64_t k, bool bf16) {
    using namespace dnnl;
    using dt = memory::data_type;
    const dt a_dt = bf16 ? dt::bf16 : dt::u8, b_dt = bf16 ? dt::bf16 : dt::s8, c_dt = bf16 ? dt::bf16 : dt::f32;
    const memory::desc a_md({m, k}, a_dt, memory::format_tag::ab);
    const memory::desc b_any({k, n}, b_dt, memory::format_tag::any);
    const memory::desc c_md({m, n}, c_dt, memory::format_tag::ab);
    primitive_attr attr;
    if (!bf16) attr.set_output_scales(0, {0.01f});
    const matmul::primitive_desc pd(matmul::desc(a_md, b_any, c_md), attr, eng);
    memory b_plain({{k, n}, b_dt, memory::format_tag::ab}, eng);
    a = memory(a_md, eng);
    b = memory(pd.weights_desc(), eng);
    c = memory(c_md, eng);
    if (bf16) {
      bench::fill_bf16(static_cast<uint16_t*>(a.get_data_handle()), size_t(m * k), 1);
      bench::fill_bf16(static_cast<uint16_t*>(b_plain.get_data_handle()), size_t(k * n), 2);
    } else {
      bench::fill_random(a.get_data_handle(), size_t(m * k), 1);
      bench::fill_random(b_plain.get_data_handle(), size_t(k * n), 2);
    }
    reorder(b_plain, b).execute(strm, b_plain, b);
    prim = matmul(pd);
  }
  void operator()() {
    prim.execute(strm, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
    strm.wait();
  }
};

// oneDNN's matmuls (run here at M = 512) use AMX tiles where the CPU has them, VNNI or bf16 dot
// products otherwise.
LinearUnit onednn_unit(bool bf16, int threads) {
  const auto& ceil = bench::ceilings(threads);
  if (bf16) return ceil.amx_bf16_gflops > 0 ? LinearUnit::amx_bf16 : LinearUnit::bf16_dot;
  return ceil.amx_int8_gops > 0 ? LinearUnit::amx_int8 : LinearUnit::int8_dot;
}

void run_onednn(benchmark::State& s, int64_t m, int64_t n, int64_t k, bool bf16, int threads) {
  omp_set_num_threads(threads);
  OnednnMatmul mm(m, n, k, bf16);
  for (auto _ : s) mm();
  const LinearUnit unit = onednn_unit(bf16, threads);
  bench::report_flops(s, 2.0 * double(m * n * k), unit_peak(unit, threads));
  s.SetLabel(std::string("kernel=onednn unit=") + linear_unit_name(unit));
}

// W8A8 (int8) or W16A16 (bf16) against oneDNN, timed alternately (bench::time_against). Time:
// ours. speedup_vs_onednn = oneDNN's median time / ours (> 1: faster). W8A8 includes quantizing
// the bf16 activations; oneDNN gets them as u8.
void run_versus_onednn(benchmark::State& s, int64_t m, int64_t n, int64_t k, bool bf16, int threads) {
  omp_set_num_threads(threads);
  OnednnMatmul theirs(m, n, k, bf16);
  const Variant v = bf16 ? kW16A16 : kW8A8;
  LinearCall ours(v, m, n, k, threads, 1);
  s.counters["speedup_vs_onednn"] = bench::time_against(s, ours, theirs);
  const QuantizedWeight& w = weight(v.bits, n, k);
  const LinearUnit unit = linear_unit(w, ours.p);
  bench::report_flops(s, 2.0 * double(m * n * k), unit_peak(unit, threads));
  s.SetLabel(std::string("kernel=") + linear_kernel_name(w, ours.p) + " unit=" + linear_unit_name(unit));
}
#endif

std::string shape_tag(int64_t m, int64_t n, int64_t k) {
  return "_m" + std::to_string(m) + "_" + std::to_string(n) + "x" + std::to_string(k);
}

void register_all() {
  const std::pair<int64_t, int64_t> shapes[] = {{4096, 4096}, {14336, 4096}, {4096, 14336}};
  for (int t : {1, 2}) {
    const std::string threads = "/threads:" + std::to_string(t);
    for (const Variant& v : kVariants)
      for (auto [n, k] : shapes)
        for (int64_t m : {1, 8, 32, 512}) {
          if (m > 1 && m < 512 && n != 14336) continue;  // M = 8, 32 on the largest shape only
          if (m == 512 && n != 4096) continue;           // prefill on 4096 x 4096 (the tags)
          const std::string name = std::string("gemm/") + v.name + shape_tag(m, n, k) + threads;
          benchmark::RegisterBenchmark(name.c_str(), run_linear, v, m, n, k, t)->UseRealTime()->Unit(benchmark::kMicrosecond);
        }
    for (const Variant& v : kQ4_0Variants)
      benchmark::RegisterBenchmark((std::string("gemm/") + v.name + "_vs_stream" + shape_tag(1, 14336, 4096) + threads).c_str(),
                                   run_versus_stream, v, 1, 14336, 4096, t)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    for (const Variant& v : kVariants)
      for (int64_t m : {1, 8, 32})  // decode: one sequence, and batches of 8 and 32
        benchmark::RegisterBenchmark((std::string("gemm/") + v.name + "_vs_stream" + shape_tag(m, 14336, 4096) + threads).c_str(),
                                     run_versus_stream, v, m, 14336, 4096, t)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("gemm/eigen_f32" + shape_tag(512, 4096, 4096) + threads).c_str(), run_eigen, 512, 4096,
                                 4096, t)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
#ifdef PAGEDINFER_BENCH_ONEDNN
    for (bool bf16 : {false, true}) {
      const std::string v = bf16 ? "w16a16" : "w8a8";
      benchmark::RegisterBenchmark(("gemm/onednn_" + v + shape_tag(512, 4096, 4096) + threads).c_str(), run_onednn, 512,
                                   4096, 4096, bf16, t)
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
      benchmark::RegisterBenchmark(("gemm/" + v + "_vs_onednn" + shape_tag(512, 4096, 4096) + threads).c_str(),
                                   run_versus_onednn, 512, 4096, 4096, bf16, t)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
#endif
  }
}

}  // namespace

int main(int argc, char** argv) { return bench::run_benchmarks(argc, argv, register_all); }
