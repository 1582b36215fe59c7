// Memory for large, long-lived arrays that kernels stream or read in scattered pages: KV pools
// (pagedinfer/kv_cache.hpp advises it) and packed weights (QuantizedWeight uses it).
//
// HugePageAllocator<T>, a std::allocator: arrays of 2 MiB and more are 2 MiB aligned and advised
// for transparent huge pages (Linux madvise(MADV_HUGEPAGE); advice only, so without THP they get
// ordinary pages), smaller ones are page-aligned (4 KiB). Why: a KV page read through a
// shuffled block table, or a weight stream crossing a 4 KiB boundary, costs a TLB miss on 4 KiB
// pages (docs/performance.md has what it costs).
#pragma once
#include <cstddef>
#include <cstdlib>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace pagedinfer {

template <class T>
struct HugePageAllocator {
  using value_type = T;
  static constexpr std::size_t kPage = 4096, kHugePage = std::size_t(2) << 20;

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}

  T* allocate(std::size_t n) {
    if (n > std::size_t(-1) / sizeof(T) - kHugePage) throw std::bad_alloc();
    const std::size_t bytes = n * sizeof(T), align = bytes < kHugePage ? kPage : kHugePage;
    const std::size_t rounded = (bytes + align - 1) / align * align;
    void* p = std::aligned_alloc(align, rounded == 0 ? align : rounded);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == kHugePage) madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { std::free(p); }

  template <class U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
  template <class U>
  bool operator!=(const HugePageAllocator<U>&) const { return false; }
};

}  // namespace pagedinfer
