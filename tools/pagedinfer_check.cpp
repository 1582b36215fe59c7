// pagedinfer-check: checks a candidate's outputs against a golden file (golden.hpp).
//
//   pagedinfer-check golden.safetensors candidate.safetensors
//   pagedinfer-check golden.safetensors [NAME=]output.npy ...
// The candidate's outputs are found by the golden file's output names (pagedinfer.outputs):
// tensors of those names in a safetensors file; an .npy file is output NAME when given as
// NAME=file.npy, or named by its file stem, or the only output. Prints, per output, the
// elements outside their bound, the largest error and error / bound, and the worst elements
// with their indices. Exit status: 0 pass, 1 fail, 2 unusable arguments or files.
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>

#include "pagedinfer/error.hpp"
#include "pagedinfer/golden.hpp"

namespace {

namespace golden = pagedinfer::golden;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

int usage(const std::string& why) {
  std::cerr << "pagedinfer-check: " << why << "\n"
            << "usage: pagedinfer-check [--worst N] golden.safetensors candidate.safetensors\n"
            << "       pagedinfer-check [--worst N] golden.safetensors [NAME=]output.npy ...\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  int worst = 10;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--worst" && i + 1 < argc) {
      worst = std::atoi(argv[++i]);
    } else if (arg == "-h" || arg == "--help") {
      usage("checks outputs against golden vectors");
      return 0;
    } else {
      files.push_back(arg);
    }
  }
  if (files.size() < 2) return usage("needs a golden file and a candidate");
  try {
    const golden::File gold = golden::read_safetensors(files[0]);
    const auto outputs = gold.metadata.find("pagedinfer.outputs");
    if (outputs == gold.metadata.end())
      return usage(files[0] + " is not a golden file (no pagedinfer.outputs metadata)");
    std::map<std::string, golden::Tensor> candidate;
    for (std::size_t i = 1; i < files.size(); ++i) {
      std::string name, path = files[i];
      if (const std::size_t eq = path.find('='); eq != std::string::npos && ends_with(path, ".npy")) {
        name = path.substr(0, eq);
        path = path.substr(eq + 1);
      }
      if (ends_with(path, ".npy")) {
        if (name.empty()) {
          const std::size_t slash = path.find_last_of('/');
          name = path.substr(slash == std::string::npos ? 0 : slash + 1);
          name = name.substr(0, name.size() - 4);
          const std::string& list = outputs->second;
          if (("," + list + ",").find("," + name + ",") == std::string::npos) {
            if (list.find(',') != std::string::npos)
              return usage(path + ": the golden file has outputs " + list + "; say which one as NAME=" + path);
            name = list;
          }
        }
        candidate[name] = golden::read_npy(path);
      } else {
        for (auto& entry : golden::read_safetensors(path).tensors) candidate.insert(std::move(entry));
      }
    }
    const golden::Report report = golden::check(gold, candidate, worst);
    std::cout << report.to_string();
    return report.pass ? 0 : 1;
  } catch (const pagedinfer::Error& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
}
