// The IA-32 guest page-table walker (Intel SDM Vol. 3A §4.3, §4.4, §4.6, §4.7, §4.8).
#include "shadow_mmu/page_walker.h"

#include "vmm/cpu_model.h"

namespace vmbt {

namespace {

/// CPUID.1:EDX[16] PAT: when it is not advertised, the PAT bits are reserved (§4.3, Table 4-4
/// and Table 4-6 footnotes; §4.4.2, Tables 4-9 and 4-11).
constexpr bool kCpuHasPat = (CpuModel::kFeaturesEdx >> 16) & 1;
/// Reserved bits of a 4 MiB PDE when CR4.PSE=1: 21:13 without PSE-36 (M = 32), plus bit 12
/// without PAT (§4.3, Table 4-4).
constexpr uint32_t kRsvd4M = 0x003fe000u | (kCpuHasPat ? 0u : pte::kPat4M);
/// Reserved bits of a PTE (32-bit paging with CR4.PSE=1, and PAE paging): bit 7 without PAT
/// (§4.3, Table 4-6; §4.4.2, Table 4-11).
constexpr uint32_t kRsvd4K = kCpuHasPat ? 0u : pte::kPat4K;
/// Reserved bits of a PAE 2 MiB PDE below MAXPHYADDR: 20:13, plus bit 12 without PAT (Table 4-9).
constexpr uint32_t kRsvd2M = 0x001fe000u | (kCpuHasPat ? 0u : pte::kPat4M);

constexpr uint64_t kPageOffset = 0xfff;

enum class Step { kNotPresent, kReserved, kMapped };

/// Fills the fields of `r` that follow from the final entry and the rights combined over the
/// levels (R/W and U/S: 1 only if 1 in every entry, §4.6.1).
inline void describe(const PagingMode& mode, uint32_t rights, uint64_t final_entry, WalkResult& r) {
  r.page_base = r.phys & ~kPageOffset;
  r.global = mode.pge && (final_entry & pte::kGlobal);  // G ignored unless CR4.PGE=1 (§4.10)
  r.dirty = final_entry & pte::kDirty;
  // §4.6.1: user-mode accesses need U/S=1 in every entry, user writes also R/W=1 in every entry;
  // supervisor writes need R/W=1 in every entry only when CR0.WP=1.
  r.user_ok = rights & pte::kUser;
  r.user_write_ok = (rights & (pte::kUser | pte::kWritable)) == (pte::kUser | pte::kWritable);
  r.writable = rights & pte::kWritable;
  r.sup_write_ok = !mode.wp || r.writable;
}

/// The translation part of a 32-bit paging walk (§4.3): reads the PDE and PTE, fills the address
/// and rights fields of `r` and returns the entries read. No rights checks, no A/D updates.
inline Step translate32(PhysAccess& mem, const PagingMode& mode, uint32_t linear, WalkResult& r,
                        uint64_t& pde_out, uint64_t& pte_out) {
  // PDE: bits 31:12 from CR3, bits 11:2 = linear 31:22 (§4.3, Table 4-3, Figures 4-2 / 4-3).
  const uint32_t pde_addr = (mode.cr3 & pte::kFrame4K) | ((linear >> 22) << 2);
  r.pde_addr = pde_addr;
  uint32_t pde = 0, pte = 0;
  if (!mem.read32(pde_addr, &pde) || !(pde & pte::kPresent)) return Step::kNotPresent;
  pde_out = pde;
  // PS is honoured only with CR4.PSE=1; otherwise the PDE references a page table (Table 4-5).
  if (mode.pse && (pde & pte::kPageSize)) {
    if (pde & kRsvd4M) return Step::kReserved;
    r.large = true;
    r.phys = (pde & pte::kFrame4M) | (linear & 0x003fffffu);  // Figure 4-3
    describe(mode, pde, pde, r);
    return Step::kMapped;
  }
  // PTE: bits 31:12 from the PDE, bits 11:2 = linear 21:12 (Figure 4-2).
  const uint32_t pte_addr = (pde & pte::kFrame4K) | ((linear >> 10) & 0xffcu);
  r.pte_addr = pte_addr;
  if (!mem.read32(pte_addr, &pte) || !(pte & pte::kPresent)) return Step::kNotPresent;
  pte_out = pte;
  if (mode.pse && (pte & kRsvd4K)) return Step::kReserved;
  r.phys = (pte & pte::kFrame4K) | (linear & 0xfffu);
  describe(mode, pde & pte, pte, r);
  return Step::kMapped;
}

/// The translation part of a PAE paging walk (§4.4.2, Figures 4-5 and 4-6, Tables 4-8 to 4-11).
inline Step translate_pae(PhysAccess& mem, const PagingMode& mode, uint32_t linear, WalkResult& r,
                          uint64_t& pde, uint64_t& pte) {
  // The PDPTE register selected by linear 31:30; it has no R/W, U/S, XD or A bit (§4.4.2).
  const uint64_t pdpte = mode.pdpte[linear >> 30];
  if (!(pdpte & pte::kPresent)) return Step::kNotPresent;
  // Bits 62:MAXPHYADDR are reserved in every entry, and XD too unless IA32_EFER.NXE=1.
  const uint64_t rsvd = pae::kRsvdHigh | (mode.nxe ? 0 : pae::kXd);
  // PDE: bits M-1:12 from the PDPTE, bits 11:3 = linear 29:21 (Figures 4-5 / 4-6).
  r.pde_addr = (pdpte & pae::kFrame4K) | (((linear >> 21) & 0x1ffu) << 3);
  if (!mem.read64(r.pde_addr, &pde) || !(pde & pte::kPresent)) return Step::kNotPresent;
  // PS=1 maps a 2 MiB page whatever CR4.PSE says (Table 4-9).
  if (pde & pte::kPageSize) {
    if (pde & (rsvd | kRsvd2M)) return Step::kReserved;
    r.large = true;
    r.phys = (pde & pae::kFrame2M) | (linear & 0x001fffffu);  // Figure 4-6
    r.nx = pde & pae::kXd;
    describe(mode, static_cast<uint32_t>(pde), pde, r);
    return Step::kMapped;
  }
  if (pde & rsvd) return Step::kReserved;  // Table 4-10
  // PTE: bits M-1:12 from the PDE, bits 11:3 = linear 20:12 (Figure 4-5).
  r.pte_addr = (pde & pae::kFrame4K) | (((linear >> 12) & 0x1ffu) << 3);
  if (!mem.read64(r.pte_addr, &pte) || !(pte & pte::kPresent)) return Step::kNotPresent;
  if (pte & (rsvd | kRsvd4K)) return Step::kReserved;  // Table 4-11
  r.phys = (pte & pae::kFrame4K) | (linear & 0xfffu);
  r.nx = (pde | pte) & pae::kXd;  // XD in any entry controlling the translation (§4.6.1)
  describe(mode, static_cast<uint32_t>(pde & pte), pte, r);
  return Step::kMapped;
}

inline Step translate(PhysAccess& mem, const PagingMode& mode, uint32_t linear, WalkResult& r,
                      uint64_t& pde, uint64_t& pte) {
  return mode.pae ? translate_pae(mem, mode, linear, r, pde, pte)
                  : translate32(mem, mode, linear, r, pde, pte);
}

/// Writes the A/D flags of an entry: only the low dword, where they are (§4.8).
inline void write_flags(PhysAccess& mem, const PagingMode& mode, uint64_t addr, uint64_t value) {
  if (mode.pae) {
    mem.write64_low(addr, static_cast<uint32_t>(value));
  } else {
    mem.write32(static_cast<uint32_t>(addr), static_cast<uint32_t>(value));
  }
}

}  // namespace

bool PhysAccess::read64(uint64_t pa, uint64_t* v) {
  uint32_t lo = 0, hi = 0;
  if (pa + 8 > (uint64_t{1} << 32)) return false;
  if (!read32(static_cast<uint32_t>(pa), &lo) || !read32(static_cast<uint32_t>(pa + 4), &hi)) {
    return false;
  }
  *v = (uint64_t{hi} << 32) | lo;
  return true;
}

bool PhysAccess::write64_low(uint64_t pa, uint32_t v) {
  if (pa + 8 > (uint64_t{1} << 32)) return false;
  return write32(static_cast<uint32_t>(pa), v);
}

bool load_pdptes(PhysAccess& mem, uint32_t cr3, std::array<uint64_t, 4>* pdpte) {
  std::array<uint64_t, 4> loaded{};
  const uint32_t pdpt = cr3 & pae::kPdptBase;  // Table 4-7: CR3 bits 31:5
  for (uint32_t i = 0; i < 4; ++i) {
    if (!mem.read64(pdpt + 8 * i, &loaded[i])) return false;
    if ((loaded[i] & pte::kPresent) && (loaded[i] & pae::kPdpteRsvd)) return false;
  }
  *pdpte = loaded;
  return true;
}

WalkResult walk(PhysAccess& mem, const PagingMode& mode, uint32_t linear, const Access& access) {
  WalkResult r;
  const bool write = access.write && !access.fetch;  // fetches follow the read rules (§4.6.1)
  // W/R, U/S and I/D describe the access, whatever the cause of the fault (§4.7); I/D is set
  // only for fetches under PAE paging with IA32_EFER.NXE=1 (the CPU model has no SMEP).
  const uint32_t access_bits = (write ? pfec::kWrite : 0u) | (access.user ? pfec::kUser : 0u) |
                               (access.fetch && mode.pae && mode.nxe ? pfec::kFetch : 0u);
  uint64_t pde = 0, pte = 0;
  switch (translate(mem, mode, linear, r, pde, pte)) {
    case Step::kNotPresent:
      r.error_code = access_bits;  // P=0
      return r;
    case Step::kReserved:
      r.error_code = pfec::kPresent | pfec::kRsvd | access_bits;
      return r;
    case Step::kMapped:
      break;
  }
  const bool allowed = access.user ? (write ? r.user_write_ok : r.user_ok)
                                   : (!write || r.sup_write_ok);  // supervisor reads: any page
  if (!allowed || (access.fetch && r.nx)) {
    r.error_code = pfec::kPresent | access_bits;
    return r;
  }
  // §4.8: A in every entry used, D in the entry that maps the page on a write; each entry is
  // written only when a bit changes (the flags are sticky). If the PTE is the PDE itself (a page
  // directory used as its own page table), both values were read before either write, so the
  // second write carries the first's bits too. PAE PDPTEs have no A bit (Table 4-8).
  const uint64_t pde_new = pde | pte::kAccessed | (r.large && write ? pte::kDirty : 0u);
  if (pde_new != pde) write_flags(mem, mode, r.pde_addr, pde_new);
  if (r.large) {
    r.dirty = pde_new & pte::kDirty;
  } else {
    const uint64_t pte_new = pte | pte::kAccessed | (write ? pte::kDirty : 0u);
    if (pte_new != pte) write_flags(mem, mode, r.pte_addr, pte_new);
    r.dirty = pte_new & pte::kDirty;
  }
  r.ok = true;
  return r;
}

WalkResult probe(PhysAccess& mem, const PagingMode& mode, uint32_t linear) {
  WalkResult r;
  uint64_t pde = 0, pte = 0;
  switch (translate(mem, mode, linear, r, pde, pte)) {
    case Step::kNotPresent:
      r.error_code = 0;
      break;
    case Step::kReserved:
      r.error_code = pfec::kPresent | pfec::kRsvd;
      break;
    case Step::kMapped:
      r.ok = true;
      break;
  }
  return r;
}

}  // namespace vmbt
