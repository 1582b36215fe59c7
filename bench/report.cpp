// Reporters of every benchmark binary: Google Benchmark's console and JSON reporters, with the
// counters that are fractions or ratios shown as plain numbers. They are set per iteration
// (kIsRate divides them by the time), so the value is already the fraction; only the "/s" the
// rate flag prints is wrong.
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "roofline.hpp"

namespace bench {

namespace {

bool is_ratio(const std::string& name) {
  return name.find("fraction") != std::string::npos || name.find("speedup") != std::string::npos ||
         name.find("_vs_") != std::string::npos || name.find("ratio") != std::string::npos;
}

template <class Base>
class PlainRatios : public Base {
 public:
  using Base::Base;
  void ReportRuns(const std::vector<benchmark::BenchmarkReporter::Run>& runs) override {
    std::vector<benchmark::BenchmarkReporter::Run> plain = runs;
    for (auto& run : plain)
      for (auto& [name, counter] : run.counters)
        if (is_ratio(name)) counter.flags = benchmark::Counter::kDefaults;
    Base::ReportRuns(plain);
  }
};

}  // namespace

void run_with_plain_ratios(int argc, char** argv) {
  bool json_file = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--benchmark_out=", 16) == 0) json_file = true;
    if (std::strncmp(argv[i], "--benchmark_out_format=", 23) == 0 && std::strcmp(argv[i] + 23, "json") != 0)
      json_file = false;  // another format: Google Benchmark's own file reporter
  }
  PlainRatios<benchmark::ConsoleReporter> console(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Color
                                                                        : benchmark::ConsoleReporter::OO_None);
  PlainRatios<benchmark::JSONReporter> json;
  benchmark::RunSpecifiedBenchmarks(&console, json_file ? &json : nullptr);
}

}  // namespace bench
