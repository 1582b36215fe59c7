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

}  // namespace pagedinfer::detail

#define PAGEDINFER_CHECK(cond, where, ...)                         \
  do {                                                            \
    if (!(cond)) ::pagedinfer::detail::fail(where, __VA_ARGS__);  \
  } while (0)
