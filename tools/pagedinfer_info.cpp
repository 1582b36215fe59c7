// pagedinfer-info: what this CPU offers and which kernel each op runs here. The first thing to
// run when a number looks wrong. --json prints the same as one JSON object.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pagedinfer/pagedinfer.hpp"

namespace {

using namespace pagedinfer;
using nlohmann::json;

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) return line.substr(line.find(':') + 2);
  return "unknown";
}

// A typical call of an op and the kernel it selects now.
struct Selection {
  std::string call, kernel;
};

std::vector<Selection> linear_selections() {
  std::vector<Selection> out;
  const int64_t n = 64, k = 4096;
  const std::vector<float> wf(size_t(n * k), 0.25f);
  const QuantizedWeight w4 = quantize(wf.data(), DType::f32, n, k, k, QuantFormat{4, 128, QuantZero::zero_point});
  const QuantizedWeight w8 = quantize(wf.data(), DType::f32, n, k, k, QuantFormat{8, 0, QuantZero::symmetric});
  struct Shape {
    const char* what;
    int64_t m;
  };
  for (const Shape& s : {Shape{"decode m=1", 1}, Shape{"batch m=8", 8}, Shape{"prefill m=512", 512}})
    for (auto mode : {LinearActivations::float_, LinearActivations::int8_per_token})
      for (const QuantizedWeight* w : {&w4, &w8}) {
        LinearParams p;
        p.m = s.m;
        p.k = k;
        p.activations = mode;
        p.x.dtype = DType::bf16;
        const std::string name = std::string(w == &w4 ? "W4" : "W8") + (mode == LinearActivations::float_ ? "A16" : "A8");
        out.push_back({std::string(s.what) + " " + name + " bf16 x", std::string(linear_kernel_name(*w, p)) + " (" +
                                                                       linear_unit_name(linear_unit(*w, p)) + ")"});
      }
  return out;
}

std::vector<Selection> selections(const std::string& op) {
  if (op == "linear") return linear_selections();
  if (op == "sampling") return {{"sample", sample_kernel_name()}};
  if (op == "quantize_kv")
    return {{"append_kv into i8", quantize_kv_kernel_name(DType::i8)},
            {"append_kv into f8_e4m3", quantize_kv_kernel_name(DType::f8_e4m3)}};
  std::vector<Selection> out;
  for (DType x : {DType::bf16, DType::f16, DType::f32}) {
    const std::string name = dtype_name(x);
    if (op == "norm") out.push_back({"rms_norm " + name, rms_norm_kernel_name(x, x)});
    if (op == "rope") out.push_back({"apply_rope " + name, rope_kernel_name(x, x)});
    if (op == "convert" && x != DType::bf16)
      out.push_back({std::string("convert, append_kv ") + name + " -> bf16", convert_kernel_name(x, DType::bf16)});
    if (op == "attention" && x == DType::bf16) out.push_back({"K / V pages fetched ahead by", attention_kv_fetch_name()});
    if (op == "attention")
      for (DType kv : {DType::bf16, DType::f16, DType::i8, DType::f8_e4m3})
        out.push_back({"decode and prefill, q " + name + ", KV " + dtype_name(kv), attention_kernel_name(x, kv)});
  }
  return out;
}

json report() {
  json j;
  j["version"] = PAGEDINFER_VERSION_STRING;
  j["cpu"] = {{"model", cpu_model()},
              {"tuning_vendor", tuning_vendor()},
              {"detected_features", feature_names(detected_features())},
              {"active_features", feature_names(active_features())},
              {"disabled_features", feature_names(disabled_features())},
              {"detected_isa", isa_name(detected_isa())},
              {"max_isa", isa_name(max_isa())},
              {"active_isa", isa_name(active_isa())}};
  for (const std::string& op : kernel_ops()) {
    json& o = j["ops"][op];
    o["forced"] = forced_kernel(op);
    for (const KernelInfo& k : registered_kernels(op))
      o["kernels"].push_back({{"name", k.name}, {"needs", feature_names(k.needs)}, {"runs_here", kernel_runs_here(k)},
                              {"serves", k.serves}});
    for (const Selection& s : selections(op)) o["selected"].push_back({{"call", s.call}, {"kernel", s.kernel}});
  }
  return j;
}

void print_text(const json& j) {
  const json& c = j["cpu"];
  std::printf("pagedinfer %s\n", j["version"].get<std::string>().c_str());
  std::printf("cpu             %s (kernel choices tuned for: %s)\n", c["model"].get<std::string>().c_str(),
              c["tuning_vendor"].get<std::string>().c_str());
  std::printf("isa             detected %s, cap %s, active %s\n", c["detected_isa"].get<std::string>().c_str(),
              c["max_isa"].get<std::string>().c_str(), c["active_isa"].get<std::string>().c_str());
  std::printf("features        %s\n", c["active_features"].get<std::string>().c_str());
  if (!c["disabled_features"].get<std::string>().empty())
    std::printf("disabled        %s\n", c["disabled_features"].get<std::string>().c_str());
  for (const auto& [op, o] : j["ops"].items()) {
    std::printf("\n%s kernels (table order; * runs here)%s\n", op.c_str(),
                o["forced"].get<std::string>().empty() ? "" : (", forced: " + o["forced"].get<std::string>()).c_str());
    for (const json& k : o["kernels"])
      std::printf("  %c %-20s %s\n", k["runs_here"].get<bool>() ? '*' : ' ', k["name"].get<std::string>().c_str(),
                  k["serves"].get<std::string>().c_str());
    std::printf("  selected now:\n");
    for (const json& s : o.value("selected", json::array()))
      std::printf("    %-36s -> %s\n", s["call"].get<std::string>().c_str(), s["kernel"].get<std::string>().c_str());
  }
  std::printf("\nControls: PAGEDINFER_MAX_ISA, PAGEDINFER_DISABLE_FEATURES, PAGEDINFER_KERNEL, PAGEDINFER_CPU_VENDOR\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      as_json = true;
    } else {
      std::fprintf(stderr, "usage: %s [--json]\n", argv[0]);
      return std::strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  try {
    const json j = report();
    if (as_json) std::cout << j.dump(2) << "\n";
    else print_text(j);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pagedinfer-info: %s\n", e.what());
    return 1;
  }
  return 0;
}
