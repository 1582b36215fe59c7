#include "block_allocator.hpp"

#include <string>

namespace decoder {

BlockAllocator::BlockAllocator(int64_t num_blocks) : count_(size_t(num_blocks), 0) {
  if (num_blocks <= 0 || num_blocks > INT32_MAX) throw std::invalid_argument("BlockAllocator: num_blocks must be in [1, 2^31)");
  free_.reserve(size_t(num_blocks));
  for (int64_t b = num_blocks - 1; b >= 0; --b) free_.push_back(int32_t(b));  // block 0 comes out first
}

int32_t BlockAllocator::allocate() {
  if (free_.empty())
    throw OutOfBlocks("BlockAllocator: all " + std::to_string(count_.size()) + " KV blocks are in use");
  const int32_t b = free_.back();
  free_.pop_back();
  count_[size_t(b)] = 1;
  return b;
}

void BlockAllocator::share(int32_t block) {
  if (count_.at(size_t(block)) <= 0) throw std::logic_error("BlockAllocator: share of free block " + std::to_string(block));
  ++count_[size_t(block)];
}

void BlockAllocator::release(int32_t block) {
  if (count_.at(size_t(block)) <= 0)
    throw std::logic_error("BlockAllocator: release of free block " + std::to_string(block) + " (double free)");
  if (--count_[size_t(block)] == 0) free_.push_back(block);
}

}  // namespace decoder
