#include "shadow_mmu/linear_window.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "vmm/error.h"

namespace vmbt {

namespace {
// Below the window: a guard large enough for the most negative offset a bit-string instruction
// (BT/BTS/BTR/BTC with a register bit offset, Intel SDM Vol. 2A "BT") can add to an operand
// address: -2^31 bits = -256 MiB. Above it: one guard page for accesses straddling the end.
constexpr uint64_t kGuardBelow = 512ull << 20;
constexpr uint64_t kReserve = kGuardBelow + 2 * LinearWindow::kSpan + LinearWindow::kPage;
}  // namespace

LinearWindow::LinearWindow() {
  void* p = mmap(nullptr, kReserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw Error(fmt::format("cannot reserve 8 GiB of host address space for the guest window: {}",
                            std::strerror(errno)));
  }
  base_ = static_cast<uint8_t*>(p) + kGuardBelow;
}

LinearWindow::~LinearWindow() {
  if (base_) munmap(base_ - kGuardBelow, kReserve);
}

bool LinearWindow::contains(const void* host, uint32_t* linear, unsigned* copy) const {
  auto h = reinterpret_cast<uintptr_t>(host);
  auto b = reinterpret_cast<uintptr_t>(base_);
  if (h < b || h - b >= 2 * kSpan) return false;
  if (linear) *linear = static_cast<uint32_t>(h - b);
  if (copy) *copy = (h - b) >= kSpan ? 1 : 0;
  return true;
}

void LinearWindow::map_fd_page(uint32_t linear_page, unsigned copy, int fd, uint64_t offset,
                               bool writable) {
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* at = base_ + copy * kSpan + uint64_t{linear_page} * kPage;
  if (mmap(at, kPage, prot, MAP_SHARED | MAP_FIXED, fd, static_cast<off_t>(offset)) == MAP_FAILED) {
    throw Error(fmt::format("cannot map a guest page into the window: {}", std::strerror(errno)));
  }
}

void LinearWindow::map_fd_range(uint32_t first, uint32_t count, unsigned copy, int fd,
                                uint64_t offset, bool writable) {
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* at = base_ + copy * kSpan + uint64_t{first} * kPage;
  if (mmap(at, uint64_t{count} * kPage, prot, MAP_SHARED | MAP_FIXED, fd,
           static_cast<off_t>(offset)) == MAP_FAILED) {
    throw Error(fmt::format("cannot map guest pages into the window: {}", std::strerror(errno)));
  }
}

void LinearWindow::protect_page(uint32_t linear_page, unsigned copy, bool writable) {
  void* at = base_ + copy * kSpan + uint64_t{linear_page} * kPage;
  if (mprotect(at, kPage, PROT_READ | (writable ? PROT_WRITE : 0)) != 0) {
    throw Error(fmt::format("cannot change a guest page's protection: {}", std::strerror(errno)));
  }
}

void LinearWindow::unmap_pages(uint32_t first, uint32_t count, unsigned copy) {
  void* at = base_ + copy * kSpan + uint64_t{first} * kPage;
  mmap(at, uint64_t{count} * kPage, PROT_NONE,
       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
}

}  // namespace vmbt
