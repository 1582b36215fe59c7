// KV blocks of the pool: allocation, reference counts (a prompt prefix shared by several
// sequences) and release. Copy-on-write is the engine's: before writing into a block whose
// count is above one, it allocates a private copy (Engine::make_writable).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace decoder {

class OutOfBlocks : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class BlockAllocator {
 public:
  explicit BlockAllocator(int64_t num_blocks);

  // A free block with count 1; throws OutOfBlocks (naming the pool size) when none is left.
  int32_t allocate();
  // One more owner of a block in use.
  void share(int32_t block);
  // One owner fewer; the block returns to the free list at zero. Throws std::logic_error for a
  // block that is not in use (a double free).
  void release(int32_t block);

  int32_t owners(int32_t block) const { return count_.at(size_t(block)); }
  int64_t free_blocks() const { return int64_t(free_.size()); }
  int64_t num_blocks() const { return int64_t(count_.size()); }

 private:
  std::vector<int32_t> free_;   // a stack: the most recently freed block is reused first
  std::vector<int32_t> count_;  // owners per block, 0 = free
};

}  // namespace decoder
