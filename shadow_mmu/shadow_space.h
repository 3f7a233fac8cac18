// The shadow MMU's own vocabulary, shared by its source files (shadow_mmu.cpp: spaces, fills,
// faults and tracing; prefetch.cpp: translations filled ahead of their use): the bits of a shadow
// entry, why a frame is write-protected, and an address space's state. Not for other layers.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "shadow_mmu/linear_window.h"
#include "shadow_mmu/page_walker.h"
#include "shadow_mmu/shadow_mmu.h"
#include "vmm/error.h"

namespace vmbt {
namespace shadow_detail {

constexpr uint32_t kPages = 1u << 20;  ///< 4 KiB pages in the 4 GiB linear space
constexpr uint32_t kIdentityCr3 = ShadowMmu::kIdentitySpace;

/// Why a guest-physical page is write-protected in every window mapping it.
namespace protect {
constexpr uint8_t kCode = 1;         ///< holds translated code (self-modifying-code detection)
constexpr uint8_t kPageTable = 2;    ///< a page directory or page table the shadows derive from
constexpr uint8_t kWatch = 4;        ///< a debugger watches stores into it (read-only mappings)
constexpr uint8_t kWatchAccess = 8;  ///< a debugger watches every access (no host access at all)
constexpr uint8_t kWatches = kWatch | kWatchAccess;
}  // namespace protect

/// A shadow entry: what the guest's tables said when the page was filled.
namespace entry {
constexpr uint32_t kPhysMask = 0x000fffff;
constexpr uint32_t kMapped = 1u << 20;
constexpr uint32_t kSupWrite = 1u << 21;    ///< supervisor writes allowed (R/W, or CR0.WP=0)
constexpr uint32_t kUser = 1u << 22;        ///< user access allowed (U/S=1 at both levels)
constexpr uint32_t kUserWrite = 1u << 23;   ///< user writes allowed
constexpr uint32_t kDirty = 1u << 24;       ///< the guest's D bit is set
constexpr uint32_t kUnassigned = 1u << 25;  ///< no RAM behind it: the all-ones page
constexpr uint32_t kSupAlias = 1u << 26;    ///< also mapped in the supervisor window's 2nd copy
constexpr uint32_t kUserAlias = 1u << 27;   ///< also mapped in the user window's 2nd copy
constexpr uint32_t kAliases = kSupAlias | kUserAlias;
constexpr uint32_t kInSup = 1u << 29;   ///< mapped in the supervisor window (1st copy)
constexpr uint32_t kInUser = 1u << 30;  ///< mapped in the user window (1st copy)
constexpr uint32_t kWindows = kInSup | kInUser | kAliases;
constexpr uint32_t kMmio = 1u << 28;  ///< a device's MMIO window: left unmapped, every access traps
/// kSupWrite only because CR0.WP=0 (R/W=0 somewhere): taken back when WP is set again.
constexpr uint32_t kWpWrite = 1u << 31;
}  // namespace entry

/// A shadow entry without kMapped but with window bits is a page *revoked in place*: those
/// windows still hold the frame (kPhysMask of guest RAM), with no host access (PROT_NONE).
/// Nothing translates through it; fill() of the same frame only changes its protection back.
constexpr uint32_t revoked(uint32_t e) {
  return e & (entry::kPhysMask | entry::kWindows);
}
constexpr bool is_revoked(uint32_t e) {
  return !(e & entry::kMapped) && (e & entry::kWindows);
}

/// Whether a paging-structure entry's change from `before` to `after` can make a shadow mapping
/// derived from it wrong: a new frame, P, R/W, U/S or PS, XD or a reserved bit (PAE entries:
/// bits 63:12), or A/D cleared (the shadow would no longer see the next access or write). AVL
/// bits 11:9, PWT/PCD, G and A/D being set need nothing (Intel SDM Vol. 3A §4.10.4.2-4.10.4.3: a
/// TLB may keep such a translation until INVLPG). 32-bit entries are zero-extended.
inline bool change_matters(uint64_t before, uint64_t after) {
  constexpr uint64_t kIgnored = 0xe00 | 0x100 | 0x18;  // AVL, G, PCD, PWT
  constexpr uint64_t kAccessedDirty = 0x20 | 0x40;
  if (!(before & 1) && !(after & 1)) return false;  // not present either way: nothing derived
  if ((before ^ after) & ~(kIgnored | kAccessedDirty)) return true;
  return (before & ~after & kAccessedDirty) != 0;
}

/// Bits 35:12 of an entry (MAXPHYADDR 36; below 4 GiB for 32-bit paging): the frame it names.
constexpr uint64_t kEntryFrame = pae::kFrame4K;

}  // namespace shadow_detail

struct ShadowMmu::Space {
  static constexpr uint32_t kPages = shadow_detail::kPages;
  uint32_t cr3_base = 0;
  uint32_t generation = 1;
  uint64_t last_used = 0;
  LinearWindow sup, user;
  uint32_t* shadow = nullptr;  ///< kPages entries, lazily committed anonymous memory
  /// Linear pages mapped to the all-ones page (no RAM behind them): each is a host mapping of
  /// its own, so at most kMaxUnassignedPages stay mapped; then they all go and map on demand.
  std::vector<uint32_t> unassigned_pages;
  /// Linear pages filled supervisor-writable only because CR0.WP=0 (entry::kWpWrite); at most
  /// kMaxWpPages, beyond which setting WP again resets the space instead.
  std::vector<uint32_t> wp_pages;
  bool wp_overflow = false;
  /// Host mapping calls made into this space's windows since it was last reset, less those
  /// whose range was unmapped since: an upper bound on the host mappings (VMAs) it holds, each
  /// of which counts against vm.max_map_count. A mapping counts once in each 2 MiB chunk of
  /// linear space it touches (chunk_maps), so that dropping a range (a directory entry, a
  /// process's exit) gives its chunks' counts back: a process touching 64 MiB page by page,
  /// again and again, must not reset the kernel's mappings every other time.
  uint64_t host_maps = 0;
  static constexpr unsigned kChunkShift = 9;  ///< 2 MiB chunks: a PAE directory entry's range
  std::array<uint32_t, (kPages >> kChunkShift)> chunk_maps{};
  /// Counts `calls` host mappings of [lin_first, lin_first + pages) (one a window or copy).
  void count_host_map(uint32_t lin_first, uint32_t pages, uint32_t calls = 1) {
    for (uint32_t c = lin_first >> kChunkShift; c <= (lin_first + pages - 1) >> kChunkShift; ++c) {
      chunk_maps[c] += calls;
      host_maps += calls;
    }
  }
  /// [first, first + count) was unmapped in every window: the chunks it covers whole hold
  /// nothing any more.
  void uncount_host_maps(uint32_t first, uint32_t count) {
    const uint32_t chunk = 1u << kChunkShift;
    for (uint32_t c = (first + chunk - 1) >> kChunkShift; (c + 1) << kChunkShift <= first + count;
         ++c) {
      host_maps -= chunk_maps[c];
      chunk_maps[c] = 0;
    }
  }

  Space() {
    void* p = mmap(nullptr, kPages * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw Error("cannot allocate a shadow page table");
    shadow = static_cast<uint32_t*>(p);
  }
  ~Space() { munmap(shadow, kPages * sizeof(uint32_t)); }
  /// Per page-directory entry: its value when the shadows of its 4 MiB range were derived from
  /// it (P=0: nothing derived). resync_directory compares the directory with it. PAE paging:
  /// entry i is PDE i % 512 of the directory PDPTE i / 512 names, a 2 MiB range.
  std::array<uint64_t, 2048> derived_pde{};
  std::array<uint64_t, 32> derived_mask{};  ///< which derived_pde entries are present
  /// PAE paging: the PDPTE registers when the space was last current (walk_in's, since its
  /// shadows derive from the directories they name).
  std::array<uint64_t, 4> pdpte{};
  /// Per linear page, whether it is execute-disabled (PAE, NXE: WalkResult::nx), for the
  /// monitor's fetch translations; empty until a page is (then kPages bits).
  std::vector<uint64_t> nx;
  void set_derived(uint32_t index, uint64_t pde) {
    derived_pde[index] = pde;
    if (pde & 1) {
      derived_mask[index >> 6] |= uint64_t{1} << (index & 63);
    } else {
      derived_mask[index >> 6] &= ~(uint64_t{1} << (index & 63));
    }
  }
  bool recycled = false;  ///< taken over by another address space, not yet resynchronized
  /// Guest-physical pages whose protection changed while the space was not current: their
  /// mappings here are set when it is current again (at most kMaxDeferredProtections; beyond
  /// that the space is reset then).
  std::vector<uint32_t> protection_todo;
  bool protection_overflow = false;

  void clear_shadow() {
    madvise(shadow, kPages * sizeof(uint32_t), MADV_DONTNEED);
    derived_pde.fill(0);
    derived_mask.fill(0);
    std::fill(nx.begin(), nx.end(), 0);
    protection_todo.clear();
    protection_overflow = false;
    unassigned_pages.clear();
    wp_pages.clear();
    wp_overflow = false;
    host_maps = 0;
    chunk_maps.fill(0);
  }
};

}  // namespace vmbt
