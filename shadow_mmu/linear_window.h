// A guest linear address space as a window of host virtual memory: the host MMU is the soft TLB.
#pragma once

#include <cstdint>

namespace vmbt {

class GuestMemory;

/// A host virtual-address window onto one guest linear address space (4 GiB), mapped twice in a
/// row so that a segment base plus an offset that wraps past 2^32 lands on the same page, as the
/// 32-bit address arithmetic of IA-32 does (Intel SDM Vol. 3A §3.4.4 wrap-around).
///
/// Translated code accesses guest linear address L as host address base() + L: the hit path is a
/// single host instruction, and the host's page tables play the role of the shadow page tables
/// (hardware-walked, as in VMware's BT monitor). Pages that are not mapped are PROT_NONE, so every
/// guest access lands either in guest RAM or in a host fault the monitor resolves: hidden fault
/// (map the page and retry), true fault (deliver #PF to the guest), MMIO or a write to a page that
/// holds translated code. No guest value can produce a host address outside the window.
class LinearWindow {
 public:
  static constexpr uint64_t kSpan = 1ull << 32;  ///< bytes of one copy of the linear space
  static constexpr uint64_t kPage = 4096;

  LinearWindow();
  ~LinearWindow();
  LinearWindow(const LinearWindow&) = delete;
  LinearWindow& operator=(const LinearWindow&) = delete;

  uint8_t* base() const { return base_; }
  /// True when `host` lies in the window; `linear` then receives the guest linear address.
  bool contains(const void* host, uint32_t* linear) const;

  /// Maps linear page `linear_page` (a page number) to guest-physical page `phys_page` of `ram`
  /// in both copies, writable or read-only. Returns false when the page is outside RAM.
  bool map_page(const GuestMemory& ram, uint32_t linear_page, uint32_t phys_page, bool writable);
  /// Maps linear page `linear_page` to byte `offset` of the file `fd` (both copies).
  void map_fd_page(uint32_t linear_page, int fd, uint64_t offset, bool writable);
  /// Maps the first `pages` linear pages identically onto guest RAM (CR0.PG=0).
  void map_identity(const GuestMemory& ram, uint32_t pages);
  /// Changes one page's protection (both copies); no effect on unmapped pages' contents.
  void protect_page(uint32_t linear_page, bool writable);
  /// Unmaps linear pages [first, first + count) (both copies): later accesses fault.
  void unmap_pages(uint32_t first, uint32_t count);

 private:
  uint8_t* base_ = nullptr;
};

}  // namespace vmbt
