// A guest linear address space as a window of host virtual memory: the host MMU is the soft TLB.
#pragma once

#include <cstdint>

namespace vmbt {

/// A host virtual-address window onto one guest linear address space (4 GiB), reserved twice in
/// a row so that a segment base plus an offset that wraps past 2^32 lands on the same page, as the
/// 32-bit address arithmetic of IA-32 does (Intel SDM Vol. 3A §3.4.4 wrap-around). The second copy
/// is only ever touched by such wrapping accesses, so its pages are mapped on demand.
///
/// Translated code accesses guest linear address L as host address base() + L: the hit path is a
/// single host instruction, and the host's page tables play the role of the shadow page tables
/// (hardware-walked, as in VMware's BT monitor). Pages that are not mapped are PROT_NONE, so every
/// guest access lands either in guest memory or in a host fault the monitor resolves. Below the
/// window lies the top 512 MiB of the linear space once more, for accesses that wrap below 0: a
/// string instruction counting down past 0 with EFLAGS.DF=1, or BT/BTS/BTR/BTC with a negative
/// bit offset (Intel SDM Vol. 2A "BT": up to -2^31 bits = -256 MiB). Copy 1 stands for both
/// aliases (above and below): its pages are mapped in each of them that covers the page. No guest
/// value can produce a host address outside the window and its aliases.
class LinearWindow {
 public:
  static constexpr uint64_t kSpan = 1ull << 32;  ///< bytes of one copy of the linear space
  static constexpr uint64_t kPage = 4096;

  LinearWindow();
  ~LinearWindow();
  LinearWindow(const LinearWindow&) = delete;
  LinearWindow& operator=(const LinearWindow&) = delete;

  uint8_t* base() const { return base_; }
  /// True when `host` lies in the window; then `linear` receives the guest linear address and
  /// `copy` which copy (0, or 1 for a wrap-around alias, above or below) it is in.
  bool contains(const void* host, uint32_t* linear, unsigned* copy = nullptr) const;

  /// Maps linear page `linear_page` of copy `copy` to byte `offset` of the file `fd` (guest RAM's
  /// memfd, or another page), writable or read-only. Throws vmbt::Error when the host refuses.
  void map_fd_page(uint32_t linear_page, unsigned copy, int fd, uint64_t offset, bool writable);
  /// Maps `count` consecutive linear pages from `first` to consecutive bytes of `fd` from
  /// `offset`, in one host call (a run the guest maps contiguously, e.g. a 4 MiB page).
  void map_fd_range(uint32_t first, uint32_t count, unsigned copy, int fd, uint64_t offset,
                    bool writable, int extra_flags = 0);
  /// Changes the protection of a mapped page of copy `copy` (cheaper than mapping it again).
  void protect_page(uint32_t linear_page, unsigned copy, bool writable);
  /// Makes a mapped page of copy `copy` inaccessible, keeping the mapping (cheaper than unmapping
  /// it: no new host mapping; the next map_fd_page over it replaces it): later accesses fault.
  void revoke_page(uint32_t linear_page, unsigned copy);
  /// Unmaps linear pages [first, first + count) of copy `copy`: later accesses fault.
  void unmap_pages(uint32_t first, uint32_t count, unsigned copy);

  /// Linear pages from here up are also below the window (the alias for wraps below 0).
  static constexpr uint32_t kBelowFirstPage =
      static_cast<uint32_t>((kSpan - (512ull << 20)) / kPage);

 private:
  /// Calls fn(host address, first linear page, pages) for each host range that copy `copy` of
  /// pages [first, first + count) has.
  template <typename Fn>
  void for_each_range(uint32_t first, uint32_t count, unsigned copy, Fn fn) const;

  uint8_t* base_ = nullptr;
};

}  // namespace vmbt
