// SPDX-License-Identifier: MIT
// Counts heap allocations by replacing the global operator new. Include in
// exactly one translation unit of a binary (it defines the operators).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

// GCC sees the replaced operator new and the free() in operator delete and
// warns about a mismatch; in a replacement pair that is exactly the point.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace ubdm::alloc_counter {
inline std::atomic<std::uint64_t> g_allocations{0};
inline std::uint64_t count() { return g_allocations.load(std::memory_order_relaxed); }
}  // namespace ubdm::alloc_counter

void* operator new(std::size_t size) {
  ubdm::alloc_counter::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void* operator new(std::size_t size, std::align_val_t align) {
  ubdm::alloc_counter::g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(align);
  if (void* p = std::aligned_alloc(a, (size + a - 1) / a * a)) {
    return p;
  }
  throw std::bad_alloc();
}
void* operator new[](std::size_t size, std::align_val_t align) { return operator new(size, align); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
