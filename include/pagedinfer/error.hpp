// pagedinfer: the one exception type of the library.
//
// Every public entry point validates its arguments before touching memory and throws
// pagedinfer::Error naming the function, the argument and the rule it broke, e.g.
//   "pagedinfer::paged_attention: page_table.block_table[2][5] = 913 is outside the pool [0, 512)"
// Kernels never throw; once validation passes, nothing is read or written out of bounds.
#pragma once
#include <stdexcept>
#include <string>

#include "pagedinfer/dtype.hpp"

namespace pagedinfer {

class PAGEDINFER_API Error : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace pagedinfer
