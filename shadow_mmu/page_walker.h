// The IA-32 guest page-table walker: 32-bit paging with 4 KiB and 4 MiB (PSE) pages, and PAE
// paging with 4 KiB and 2 MiB pages and execute-disable.
#pragma once

#include <array>
#include <cstdint>

#include "vmm/cpu_model.h"

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

/// PAE paging (Intel SDM Vol. 3A §4.4): 8-byte entries whose low bits are those of `pte` (P, R/W,
/// U/S, A, D, PS, G, PAT as in Tables 4-9 to 4-11), with physical addresses up to MAXPHYADDR bits
/// and the execute-disable bit 63.
namespace pae {
/// MAXPHYADDR, the physical-address width (§4.1.4). The CPU model has no CPUID leaf 80000008H,
/// so a model that advertises PAE (CPUID.1:EDX[6]) reports 36 (§4.1.4: "36 if
/// CPUID.01H:EDX.PAE [bit 6] = 1"). Entry bits 62:36 are reserved; a page may lie above 4 GiB.
inline constexpr int kMaxPhyAddr = CpuModel::kMaxPhyAddr;
/// Bits MAXPHYADDR-1:0: the physical addresses an entry can hold.
inline constexpr uint64_t kPhysMask = (uint64_t{1} << kMaxPhyAddr) - 1;
inline constexpr uint64_t kFrame4K = kPhysMask & ~uint64_t{0xfff};     ///< M-1:12: table or page
inline constexpr uint64_t kFrame2M = kPhysMask & ~uint64_t{0x1fffff};  ///< M-1:21: 2 MiB page
inline constexpr uint64_t kXd = uint64_t{1} << 63;  ///< XD: execute-disable when IA32_EFER.NXE=1
/// Bits 62:MAXPHYADDR, reserved in every PDE and PTE (Tables 4-9 to 4-11).
inline constexpr uint64_t kRsvdHigh = ~kPhysMask & ~kXd;
/// Reserved bits of a present PDPTE (§4.4.1, Table 4-8): 2:1, 8:5 and 63:MAXPHYADDR (a PDPTE has
/// no XD bit). Loading one with any of them set is a #GP (load_pdptes).
inline constexpr uint64_t kPdpteRsvd = 0x1e6u | ~kPhysMask;
/// CR3 bits 31:5: the 32-byte-aligned page-directory-pointer table (§4.4.1, Table 4-7).
inline constexpr uint32_t kPdptBase = 0xffffffe0u;
}  // namespace pae

/// Bits of the page-fault error code (SDM Vol. 3A §4.7, Figure 4-12).
namespace pfec {
inline constexpr uint32_t kPresent = 1u << 0;  ///< P: 0 = not-present page, 1 = protection/RSVD
inline constexpr uint32_t kWrite = 1u << 1;    ///< W/R: the access was a write
inline constexpr uint32_t kUser = 1u << 2;     ///< U/S: the access was a user-mode access
inline constexpr uint32_t kRsvd = 1u << 3;     ///< RSVD: a reserved bit was set in an entry
inline constexpr uint32_t kFetch = 1u << 4;    ///< I/D: an instruction fetch, PAE and NXE only
}  // namespace pfec

/// How the guest accesses memory (Intel SDM Vol. 3A §4.6). `user` is a user-mode access (CPL=3,
/// not an implicit supervisor access such as a GDT read); `fetch` is an instruction fetch, which
/// follows the read rules (no SMEP), so `write` is ignored when `fetch` is set, and with PAE
/// paging and IA32_EFER.NXE=1 is also denied on an execute-disabled page (§4.6.1).
struct Access {
  bool write = false;
  bool user = false;
  bool fetch = false;
};

/// Paging controls that affect translation.
struct PagingMode {
  uint32_t cr3 = 0;  ///< 32-bit paging: page-directory base in bits 31:12; PWT/PCD and the rest
                     ///< ignored (Table 4-3). PAE paging: unused by the walk, which uses `pdpte`
  bool pse = false;  ///< CR4.PSE: PS=1 in a PDE maps a 4 MiB page; enables reserved-bit checks
                     ///< (32-bit paging only: PAE paging honours PS and checks reserved bits
                     ///< whatever CR4.PSE says, §4.4.2)
  bool wp = false;   ///< CR0.WP: supervisor writes honour R/W (§4.6.1)
  bool pge = false;  ///< CR4.PGE: the G bit makes a translation global (§4.10.2.4)
  bool pae = false;  ///< CR4.PAE: PAE paging (§4.4) through the PDPTE registers `pdpte`
  bool nxe = false;  ///< IA32_EFER.NXE: bit 63 of a PAE PDE/PTE is XD, not reserved (§4.4.2)
  /// The PDPTE registers of PAE paging (§4.4.1), as load_pdptes() loaded them at the last MOV
  /// CR3 (or other load event): the walk does not reread the PDPT. Present ones are assumed to
  /// have no reserved bit set (load_pdptes refused them).
  std::array<uint64_t, 4> pdpte{};
};

/// The outcome of one walk. When !ok, error_code is set; the other fields are valid only for a
/// protection fault (error_code P=1, RSVD=0), where they describe the mapping that denied it.
struct WalkResult {
  bool ok = false;
  /// Guest-physical address of the accessed byte (ok). Below 4 GiB with 32-bit paging; with PAE
  /// paging anywhere below 2^MAXPHYADDR (pae::kMaxPhyAddr).
  uint64_t phys = 0;
  uint64_t page_base = 0;      ///< guest-physical base of the 4 KiB page containing it (for a large
                               ///< page: the 4 KiB frame inside it)
  bool large = false;          ///< mapped by a PDE: a 4 MiB page (PS=1, CR4.PSE=1, 32-bit paging)
                               ///< or a 2 MiB page (PS=1, PAE paging)
  bool global = false;         ///< G bit of the final entry and CR4.PGE=1 (G is ignored otherwise)
  bool user_ok = false;        ///< a CPL3 access may read the page (U/S=1 at both levels)
  bool user_write_ok = false;  ///< a CPL3 access may write it (U/S and R/W = 1 at both levels)
  bool sup_write_ok = false;   ///< a supervisor access may write it (R/W=1 at both levels, or
                               ///< CR0.WP=0)
  bool writable = false;       ///< R/W=1 at both levels (what CR0.WP=1 requires)
  bool dirty = false;          ///< D bit of the final entry after this walk
  bool nx = false;  ///< execute-disabled: PAE paging, IA32_EFER.NXE=1 and XD=1 in the PDE or the
                    ///< PTE (§4.6.1); fetches fault, reads and writes do not
  uint64_t pde_addr = 0, pte_addr = 0;  ///< guest-physical addresses of the entries used
                                        ///< (pte_addr = 0 for a 4 MiB or 2 MiB page)
  uint32_t error_code = 0;  ///< when !ok: the #PF error code (P, W/R, U/S, RSVD, I/D; §4.7)
};

/// Guest-physical memory as the walker reads and updates it: 4-byte aligned entries for 32-bit
/// paging, 8-byte aligned entries (read64 / write64_low) for PAE paging.
class PhysAccess {
 public:
  virtual ~PhysAccess() = default;
  virtual bool read32(uint32_t pa, uint32_t* v) = 0;  ///< false: outside RAM
  virtual bool write32(uint32_t pa, uint32_t v) = 0;  ///< false: outside RAM
  /// Reads the 8-byte PAE entry at `pa` (Intel SDM Vol. 3A §4.4); false: outside RAM. The
  /// default reads the two halves with read32 and finds nothing at or above 4 GiB.
  virtual bool read64(uint64_t pa, uint64_t* v);
  /// Writes the low dword of the 8-byte PAE entry at `pa`, where its A and D bits are (§4.8),
  /// leaving the high dword alone; false: outside RAM. The default is write32 below 4 GiB.
  virtual bool write64_low(uint64_t pa, uint32_t v);
};

/// Loads the four PDPTEs of PAE paging from the 32-byte page-directory-pointer table at CR3 bits
/// 31:5 into `*pdpte`, as MOV CR3 (and the other events of Intel SDM Vol. 3A §4.4.1) loads the
/// PDPTE registers. Returns false, leaving `*pdpte` unchanged, where the load is a #GP: a
/// present PDPTE with a reserved bit set (bits 2:1, 8:5, 63:MAXPHYADDR; Table 4-8), or a PDPT
/// outside RAM (which reads as all ones on a PC's bus; KVM refuses it with #GP too).
bool load_pdptes(PhysAccess& mem, uint32_t cr3, std::array<uint64_t, 4>* pdpte);

/// Walks the paging structures for `linear` and checks the access rights (§4.6.1: U/S, R/W,
/// CR0.WP; with PAE paging and IA32_EFER.NXE=1 also XD for fetches), and on success sets the
/// Accessed bit in the PDE and PTE (or the PDE of a large page) and, for a write, the Dirty bit
/// in the final entry (§4.8); an entry is written only if a bit changes, and nothing is written
/// when the walk faults. An entry read outside RAM counts as not present.
///
/// 32-bit paging (`!mode.pae`): the 2-level structures of SDM Vol. 3A §4.3 (Figures 4-2 and 4-3,
/// Tables 4-4 to 4-6). Reserved bits exist only with CR4.PSE=1 (§4.3): bits 21:13 of a 4 MiB
/// PDE (no PSE-36) and, if the CPU model does not advertise PAT (CPUID.1:EDX[16]), bit 12 of a
/// 4 MiB PDE and bit 7 of a PTE.
///
/// PAE paging (`mode.pae`, §4.4.2, Figures 4-5 and 4-6, Tables 4-8 to 4-11): the PDPTE register
/// selected by linear bits 31:30 (no access rights, no A bit), then 8-byte PDEs and PTEs, of
/// which only the low dword is written. Reserved in every PDE and PTE: bits 62:MAXPHYADDR, and
/// bit 63 when IA32_EFER.NXE=0; in a 2 MiB PDE bits 20:13; and as above the PAT bits without PAT.
///
/// A set reserved bit faults with error code P=1, RSVD=1 (§4.7). I/D is set for instruction
/// fetches under PAE paging with NXE=1, whatever the cause of the fault (§4.7).
WalkResult walk(PhysAccess& mem, const PagingMode& mode, uint32_t linear, const Access& access);

/// Same walk without setting A/D bits and without rights checks: what the entries say (for TB
/// lookup and debugging). ok=false if not present or a reserved bit is set (error_code as for a
/// supervisor read: 0, or P|RSVD). Handles both paging modes as walk() does.
WalkResult probe(PhysAccess& mem, const PagingMode& mode, uint32_t linear);

}  // namespace vmbt
