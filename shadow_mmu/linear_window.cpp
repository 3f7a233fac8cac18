#include "shadow_mmu/linear_window.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vmm/error.h"

namespace vmbt {

namespace {
// Below the window: the top 512 MiB of the linear space again (wraps below 0; the most negative
// BT/BTS bit offset is -2^31 bits = -256 MiB). Above it: one guard page for accesses straddling
// the end of the second copy.
constexpr uint64_t kBelow = 512ull << 20;
constexpr uint64_t kReserve = kBelow + 2 * LinearWindow::kSpan + LinearWindow::kPage;
}  // namespace

LinearWindow::LinearWindow() {
  void* p = mmap(nullptr, kReserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw Error(fmt::format("cannot reserve 8.5 GiB of host address space for the guest window: {}",
                            std::strerror(errno)));
  }
  base_ = static_cast<uint8_t*>(p) + kBelow;
}

LinearWindow::~LinearWindow() {
  if (base_) munmap(base_ - kBelow, kReserve);
}

bool LinearWindow::contains(const void* host, uint32_t* linear, unsigned* copy) const {
  auto h = reinterpret_cast<uintptr_t>(host);
  auto b = reinterpret_cast<uintptr_t>(base_);
  if (h < b) {
    if (b - h > kBelow) return false;
    if (linear) *linear = static_cast<uint32_t>(h - b);  // wraps to the top of the space
    if (copy) *copy = 1;
    return true;
  }
  if (h - b >= 2 * kSpan) return false;
  if (linear) *linear = static_cast<uint32_t>(h - b);
  if (copy) *copy = (h - b) >= kSpan ? 1 : 0;
  return true;
}

template <typename Fn>
void LinearWindow::for_each_range(uint32_t first, uint32_t count, unsigned copy, Fn fn) const {
  if (copy == 0) {
    fn(base_ + uint64_t{first} * kPage, first, count);
    return;
  }
  fn(base_ + kSpan + uint64_t{first} * kPage, first, count);
  const uint64_t end = uint64_t{first} + count;
  if (end > kBelowFirstPage) {  // the part of the range the alias below the window covers
    const uint32_t from = std::max(first, kBelowFirstPage);
    fn(base_ - kSpan + uint64_t{from} * kPage, from, static_cast<uint32_t>(end - from));
  }
}

void LinearWindow::map_fd_page(uint32_t linear_page, unsigned copy, int fd, uint64_t offset,
                               bool writable) {
  // A single page is mapped because it is about to be used: its host page-table entry is made
  // now (MAP_POPULATE), in the same call, instead of by a host fault on the first access.
  map_fd_range(linear_page, 1, copy, fd, offset, writable, MAP_POPULATE);
}

void LinearWindow::map_fd_range(uint32_t first, uint32_t count, unsigned copy, int fd,
                                uint64_t offset, bool writable, int extra_flags) {
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  for_each_range(first, count, copy, [&](uint8_t* at, uint32_t from, uint32_t pages) {
    const uint64_t file_offset = offset + uint64_t{from - first} * kPage;
    if (mmap(at, uint64_t{pages} * kPage, prot, MAP_SHARED | MAP_FIXED | extra_flags, fd,
             static_cast<off_t>(file_offset)) == MAP_FAILED) {
      throw Error(fmt::format("cannot map guest pages into the window: {}", std::strerror(errno)));
    }
  });
}

void LinearWindow::protect_page(uint32_t linear_page, unsigned copy, bool writable) {
  for_each_range(linear_page, 1, copy, [&](uint8_t* at, uint32_t, uint32_t) {
    if (mprotect(at, kPage, PROT_READ | (writable ? PROT_WRITE : 0)) != 0) {
      throw Error(fmt::format("cannot change a guest page's protection: {}", std::strerror(errno)));
    }
  });
}

void LinearWindow::revoke_page(uint32_t linear_page, unsigned copy) {
  for_each_range(linear_page, 1, copy, [&](uint8_t* at, uint32_t, uint32_t) {
    if (mprotect(at, kPage, PROT_NONE) != 0) {
      throw Error(fmt::format("cannot change a guest page's protection: {}", std::strerror(errno)));
    }
  });
}

void LinearWindow::unmap_pages(uint32_t first, uint32_t count, unsigned copy) {
  for_each_range(first, count, copy, [&](uint8_t* at, uint32_t, uint32_t pages) {
    mmap(at, uint64_t{pages} * kPage, PROT_NONE,
         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  });
}

}  // namespace vmbt
