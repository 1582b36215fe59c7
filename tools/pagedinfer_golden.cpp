// pagedinfer-golden: writes golden vectors (golden.hpp) for validating another implementation
// of an op: one case from a spec, or the standard suite.
//
//   pagedinfer-golden [--spec case.json] [--KEY VALUE ...] -o case.safetensors
//   pagedinfer-golden --suite DIR [--filter TEXT]
//   pagedinfer-golden --list
// --KEY VALUE sets spec key KEY (over the spec file's); VALUE is read as JSON where it parses
// (numbers, true, [1,2]) and as a string otherwise. docs/golden.md lists the keys of each op.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "pagedinfer/error.hpp"
#include "pagedinfer/golden.hpp"

namespace {

using nlohmann::json;
namespace golden = pagedinfer::golden;

int usage(const char* why) {
  std::cerr << "pagedinfer-golden: " << why << "\n"
            << "usage: pagedinfer-golden [--spec case.json] [--KEY VALUE ...] -o case.safetensors\n"
            << "       pagedinfer-golden --suite DIR [--filter TEXT]\n"
            << "       pagedinfer-golden --list\n";
  return 2;
}

// Generates one case and writes it; prints one line about it.
void write_case(const std::string& spec, const std::string& path) {
  const auto start = std::chrono::steady_clock::now();
  const golden::File file = golden::generate(spec);
  golden::write_safetensors(path, file);
  std::size_t bytes = 0;
  for (const auto& entry : file.tensors) bytes += entry.second.data.size();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s: outputs %s, %zu tensors, %.1f MB, %.1f s\n", path.c_str(),
              file.metadata.at("pagedinfer.outputs").c_str(), file.tensors.size(), double(bytes) / 1e6, seconds);
}

}  // namespace

int main(int argc, char** argv) {
  json spec = json::object();
  std::string out, suite_dir, filter;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--list") {
      list = true;
    } else if (arg == "-h" || arg == "--help") {
      usage("golden vectors for validating an op's implementation");
      return 0;
    } else if (!has_value) {
      return usage(("missing a value after " + arg).c_str());
    } else if (arg == "-o" || arg == "--output") {
      out = argv[++i];
    } else if (arg == "--suite") {
      suite_dir = argv[++i];
    } else if (arg == "--filter") {
      filter = argv[++i];
    } else if (arg == "--spec") {
      std::ifstream in(argv[++i]);
      if (!in) return usage((std::string("cannot open ") + argv[i]).c_str());
      try {
        spec.update(json::parse(in));
      } catch (const json::exception& e) {
        std::cerr << "pagedinfer-golden: " << argv[i] << " is not JSON: " << e.what() << "\n";
        return 2;
      }
    } else if (arg.rfind("--", 0) == 0) {
      const std::string value = argv[++i];
      spec[arg.substr(2)] = json::accept(value) ? json::parse(value) : json(value);
    } else {
      return usage(("unexpected argument " + arg).c_str());
    }
  }
  try {
    if (list) {
      for (const std::string& s : golden::standard_suite()) std::cout << json::parse(s)["name"].get<std::string>() << "\n";
      return 0;
    }
    if (!suite_dir.empty()) {
      std::filesystem::create_directories(suite_dir);
      int written = 0;
      for (const std::string& s : golden::standard_suite()) {
        const std::string name = json::parse(s)["name"].get<std::string>();
        if (name.find(filter) == std::string::npos) continue;
        write_case(s, suite_dir + "/" + name + ".safetensors");
        ++written;
      }
      if (written == 0) return usage(("no suite case matches --filter " + filter).c_str());
      return 0;
    }
    if (out.empty()) return usage("say where to write the case (-o case.safetensors)");
    write_case(spec.dump(), out);
  } catch (const pagedinfer::Error& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  return 0;
}
