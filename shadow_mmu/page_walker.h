// The IA-32 guest page-table walker: 32-bit (non-PAE) paging with 4 KiB and 4 MiB (PSE) pages.
#pragma once

#include <cstdint>

namespace vmbt {

/// Bits of 32-bit paging entries (Intel SDM Vol. 3A §4.3, Tables 4-4, 4-5 and 4-6).
namespace pte {
inline constexpr uint32_t kPresent = 1u << 0;      ///< P
inline constexpr uint32_t kWritable = 1u << 1;     ///< R/W
inline constexpr uint32_t kUser = 1u << 2;         ///< U/S
inline constexpr uint32_t kAccessed = 1u << 5;     ///< A (§4.8)
inline constexpr uint32_t kDirty = 1u << 6;        ///< D, only in an entry that maps a page (§4.8)
inline constexpr uint32_t kPageSize = 1u << 7;     ///< PS in a PDE (Table 4-4 / 4-5)
inline constexpr uint32_t kPat4K = 1u << 7;        ///< PAT in a PTE (Table 4-6)
inline constexpr uint32_t kGlobal = 1u << 8;       ///< G, only in an entry that maps a page
inline constexpr uint32_t kPat4M = 1u << 12;       ///< PAT in a 4 MiB PDE (Table 4-4)
inline constexpr uint32_t kFrame4K = 0xfffff000u;  ///< bits 31:12: page table or 4 KiB frame
inline constexpr uint32_t kFrame4M = 0xffc00000u;  ///< bits 31:22: 4 MiB frame (no PSE-36)
}  // namespace pte

/// Bits of the page-fault error code (SDM Vol. 3A §4.7, Figure 4-12).
namespace pfec {
inline constexpr uint32_t kPresent = 1u << 0;  ///< P: 0 = not-present page, 1 = protection/RSVD
inline constexpr uint32_t kWrite = 1u << 1;    ///< W/R: the access was a write
inline constexpr uint32_t kUser = 1u << 2;     ///< U/S: the access was a user-mode access
inline constexpr uint32_t kRsvd = 1u << 3;     ///< RSVD: a reserved bit was set in an entry
inline constexpr uint32_t kFetch = 1u << 4;    ///< I/D: never set here (no NX, no SMEP)
}  // namespace pfec

/// How the guest accesses memory (Intel SDM Vol. 3A §4.6). `user` is a user-mode access (CPL=3,
/// not an implicit supervisor access such as a GDT read); `fetch` is an instruction fetch, which
/// follows the read rules (no NX in 32-bit paging), so `write` is ignored when `fetch` is set.
struct Access {
  bool write = false;
  bool user = false;
  bool fetch = false;
};

/// Paging controls that affect translation.
struct PagingMode {
  uint32_t cr3 =
      0;  ///< page-directory base in bits 31:12; PWT/PCD and the rest ignored (Table 4-3)
  bool pse = false;  ///< CR4.PSE: PS=1 in a PDE maps a 4 MiB page; enables reserved-bit checks
  bool wp = false;   ///< CR0.WP: supervisor writes honour R/W (§4.6.1)
  bool pge = false;  ///< CR4.PGE: the G bit makes a translation global (§4.10.2.4)
};

/// The outcome of one walk. When !ok, error_code is set; the other fields are valid only for a
/// protection fault (error_code P=1, RSVD=0), where they describe the mapping that denied it.
struct WalkResult {
  bool ok = false;
  uint32_t phys = 0;           ///< guest-physical address of the accessed byte (ok)
  uint32_t page_base = 0;      ///< guest-physical base of the 4 KiB page containing it (for a 4 MiB
                               ///< page: the 4 KiB frame inside it)
  bool large = false;          ///< mapped by a 4 MiB PDE (PS=1, CR4.PSE=1)
  bool global = false;         ///< G bit of the final entry and CR4.PGE=1 (G is ignored otherwise)
  bool user_ok = false;        ///< a CPL3 access may read the page (U/S=1 at both levels)
  bool user_write_ok = false;  ///< a CPL3 access may write it (U/S and R/W = 1 at both levels)
  bool sup_write_ok = false;   ///< a supervisor access may write it (R/W=1 at both levels, or
                               ///< CR0.WP=0)
  bool writable = false;       ///< R/W=1 at both levels (what CR0.WP=1 requires)
  bool dirty = false;          ///< D bit of the final entry after this walk
  uint32_t pde_addr = 0, pte_addr = 0;  ///< guest-physical addresses of the entries used
                                        ///< (pte_addr = 0 for a 4 MiB page)
  uint32_t error_code = 0;  ///< when !ok: the #PF error code (P, W/R, U/S, RSVD; I/D = 0)
};

/// Guest-physical memory as the walker reads and updates it (4-byte aligned entries).
class PhysAccess {
 public:
  virtual ~PhysAccess() = default;
  virtual bool read32(uint32_t pa, uint32_t* v) = 0;  ///< false: outside RAM
  virtual bool write32(uint32_t pa, uint32_t v) = 0;  ///< false: outside RAM
};

/// Walks the 2-level 32-bit paging structures for `linear` (SDM Vol. 3A §4.3, Figures 4-2 and
/// 4-3, Tables 4-4 to 4-6), checks the access rights (§4.6.1: U/S, R/W, CR0.WP), and on success
/// sets the Accessed bit in the PDE and PTE (or the PDE of a 4 MiB page) and, for a write, the
/// Dirty bit in the final entry (§4.8); an entry is written only if a bit changes, and nothing
/// is written when the walk faults. An entry read outside RAM counts as not present.
///
/// Reserved bits exist only with CR4.PSE=1 (§4.3): bits 21:13 of a 4 MiB PDE (no PSE-36) and,
/// because the CPU model does not advertise PAT (CPUID.1:EDX[16]), bit 12 of a 4 MiB PDE and
/// bit 7 of a PTE. A set reserved bit faults with error code P=1, RSVD=1 (§4.7).
WalkResult walk(PhysAccess& mem, const PagingMode& mode, uint32_t linear, const Access& access);

/// Same walk without setting A/D bits and without rights checks: what the entries say (for TB
/// lookup and debugging). ok=false if not present or a reserved bit is set (error_code as for a
/// supervisor read: 0, or P|RSVD).
WalkResult probe(PhysAccess& mem, const PagingMode& mode, uint32_t linear);

}  // namespace vmbt
