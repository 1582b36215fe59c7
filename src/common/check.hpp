// Argument validation at the API boundary: PAGEDINFER_CHECK(cond, "function", parts...)
// throws pagedinfer::Error("pagedinfer::function: parts...") when cond is false. The message
// is only built on failure.
#pragma once
#include <sstream>
#include <string>

#include "pagedinfer/error.hpp"

namespace pagedinfer::detail {

template <class... Parts>
[[noreturn]] void fail(const char* where, const Parts&... parts) {
  std::ostringstream os;
  os << "pagedinfer::" << where << ": ";
  (os << ... << parts);
  throw Error(os.str());
}

// The most threads a call may ask for: far above any CPU's cores, low enough that per-thread
// workspaces stay small.
constexpr int kMaxThreads = 1024;

// num_threads in [1, kMaxThreads]; `name` as the caller's params spell it.
inline void check_num_threads(int n, const char* where, const char* name) {
  if (n < 1 || n > kMaxThreads) fail(where, name, " = ", n, " must be in [1, ", kMaxThreads, "]");
}

}  // namespace pagedinfer::detail

#define PAGEDINFER_CHECK(cond, where, ...)                         \
  do {                                                            \
    if (!(cond)) ::pagedinfer::detail::fail(where, __VA_ARGS__);  \
  } while (0)
