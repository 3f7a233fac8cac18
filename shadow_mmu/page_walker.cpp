// The IA-32 guest page-table walker (Intel SDM Vol. 3A §4.3, §4.6, §4.7, §4.8).
#include "shadow_mmu/page_walker.h"

#include "vmm/cpu_model.h"

namespace vmbt {

namespace {

/// CPUID.1:EDX[16] PAT: when it is not advertised, the PAT bits are reserved (§4.3, Table 4-4
/// and Table 4-6 footnotes).
constexpr bool kCpuHasPat = (CpuModel::kFeaturesEdx >> 16) & 1;
/// Reserved bits of a 4 MiB PDE when CR4.PSE=1: 21:13 without PSE-36 (M = 32), plus bit 12
/// without PAT (§4.3, Table 4-4).
constexpr uint32_t kRsvd4M = 0x003fe000u | (kCpuHasPat ? 0u : pte::kPat4M);
/// Reserved bits of a PTE when CR4.PSE=1: bit 7 without PAT (§4.3, Table 4-6).
constexpr uint32_t kRsvd4K = kCpuHasPat ? 0u : pte::kPat4K;

enum class Step { kNotPresent, kReserved, kMapped };

/// The translation part of the walk (§4.3): reads the PDE and PTE, fills the address and rights
/// fields of `r` and returns the entries read. No rights checks, no A/D updates.
inline Step translate(PhysAccess& mem, const PagingMode& mode, uint32_t linear, WalkResult& r,
                      uint32_t& pde, uint32_t& pte) {
  // PDE: bits 31:12 from CR3, bits 11:2 = linear 31:22 (§4.3, Table 4-3, Figures 4-2 / 4-3).
  r.pde_addr = (mode.cr3 & pte::kFrame4K) | ((linear >> 22) << 2);
  if (!mem.read32(r.pde_addr, &pde) || !(pde & pte::kPresent)) return Step::kNotPresent;
  uint32_t rights;  // R/W and U/S combined over the levels: 1 only if 1 in every entry (§4.6.1)
  uint32_t final_entry;
  // PS is honoured only with CR4.PSE=1; otherwise the PDE references a page table (Table 4-5).
  if (mode.pse && (pde & pte::kPageSize)) {
    if (pde & kRsvd4M) return Step::kReserved;
    r.large = true;
    r.phys = (pde & pte::kFrame4M) | (linear & 0x003fffffu);  // Figure 4-3
    rights = pde;
    final_entry = pde;
  } else {
    // PTE: bits 31:12 from the PDE, bits 11:2 = linear 21:12 (Figure 4-2).
    r.pte_addr = (pde & pte::kFrame4K) | ((linear >> 10) & 0xffcu);
    if (!mem.read32(r.pte_addr, &pte) || !(pte & pte::kPresent)) return Step::kNotPresent;
    if (mode.pse && (pte & kRsvd4K)) return Step::kReserved;
    r.phys = (pte & pte::kFrame4K) | (linear & 0xfffu);
    rights = pde & pte;
    final_entry = pte;
  }
  r.page_base = r.phys & pte::kFrame4K;
  r.global = mode.pge && (final_entry & pte::kGlobal);  // G ignored unless CR4.PGE=1 (§4.10)
  r.dirty = final_entry & pte::kDirty;
  // §4.6.1: user-mode accesses need U/S=1 in every entry, user writes also R/W=1 in every entry;
  // supervisor writes need R/W=1 in every entry only when CR0.WP=1.
  r.user_ok = rights & pte::kUser;
  r.user_write_ok = (rights & (pte::kUser | pte::kWritable)) == (pte::kUser | pte::kWritable);
  r.writable = rights & pte::kWritable;
  r.sup_write_ok = !mode.wp || r.writable;
  return Step::kMapped;
}

}  // namespace

WalkResult walk(PhysAccess& mem, const PagingMode& mode, uint32_t linear, const Access& access) {
  WalkResult r;
  const bool write = access.write && !access.fetch;  // fetches follow the read rules (§4.6.1)
  // W/R and U/S describe the access, whatever the cause of the fault (§4.7); I/D stays 0 since
  // 32-bit paging has no NX and the CPU model no SMEP.
  const uint32_t access_bits = (write ? pfec::kWrite : 0u) | (access.user ? pfec::kUser : 0u);
  uint32_t pde = 0, pte = 0;
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
  if (!allowed) {
    r.error_code = pfec::kPresent | access_bits;
    return r;
  }
  // §4.8: A in every entry used, D in the entry that maps the page on a write; each entry is
  // written only when a bit changes (the flags are sticky). If the PTE is the PDE itself (a page
  // directory used as its own page table), both values were read before either write, so the
  // second write carries the first's bits too.
  const uint32_t pde_new = pde | pte::kAccessed | (r.large && write ? pte::kDirty : 0u);
  if (pde_new != pde) mem.write32(r.pde_addr, pde_new);
  if (r.large) {
    r.dirty = pde_new & pte::kDirty;
  } else {
    const uint32_t pte_new = pte | pte::kAccessed | (write ? pte::kDirty : 0u);
    if (pte_new != pte) mem.write32(r.pte_addr, pte_new);
    r.dirty = pte_new & pte::kDirty;
  }
  r.ok = true;
  return r;
}

WalkResult probe(PhysAccess& mem, const PagingMode& mode, uint32_t linear) {
  WalkResult r;
  uint32_t pde = 0, pte = 0;
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
