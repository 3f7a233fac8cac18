// The guest page-table walker in PAE paging mode against Intel SDM Vol. 3A §4.4 (PAE paging,
// PDPTE registers), §4.6.1 (access rights, execute-disable), §4.7 (page-fault error code, I/D)
// and §4.8 (accessed and dirty flags).
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "shadow_mmu/page_walker.h"
#include "vmm/cpu_model.h"

namespace vmbt {
namespace {

// Entry bits spelled out from SDM Tables 4-8 to 4-11 rather than taken from the header.
constexpr uint64_t P = 1u << 0, RW = 1u << 1, US = 1u << 2, PWT = 1u << 3, PCD = 1u << 4,
                   A = 1u << 5, D = 1u << 6, PS = 1u << 7, G = 1u << 8, XD = uint64_t{1} << 63;
/// Bit 7 of a PTE and bit 12 of a 2 MiB PDE: PAT, reserved unless CPUID.1:EDX[16] (Tables 4-9,
/// 4-11).
constexpr uint64_t kPtePat = 1u << 7, kPdePat = 1u << 12;
constexpr bool kModelHasPat = (CpuModel::kFeaturesEdx >> 16) & 1;
/// MAXPHYADDR as this test expects it: 36, what a CPU with PAE and without CPUID leaf 80000008H
/// reports (SDM Vol. 3A §4.1.4).
constexpr int M = 36;
static_assert(pae::kMaxPhyAddr == M);

/// The two banks of guest RAM: 64 KiB at 0 and 64 KiB at 32 GiB (above 4 GiB, below 2^36).
constexpr uint64_t kBankBytes = 0x10000;
constexpr uint64_t kHigh = uint64_t{8} << 30;

/// Guest RAM as 64-bit words in two banks. PAE walks must use read64 / write64_low only, and
/// write64_low must leave the high dword alone (checked by the bank layout: 64-bit words).
class FakeRam64 : public PhysAccess {
 public:
  explicit FakeRam64(uint64_t bank_bytes = kBankBytes)
      : bank(bank_bytes), low(bank_bytes / 8), high(bank_bytes / 8) {}
  uint64_t* word(uint64_t pa) {
    if (pa < bank) return &low[pa / 8];
    if (pa >= kHigh && pa - kHigh < bank) return &high[(pa - kHigh) / 8];
    return nullptr;
  }
  bool read64(uint64_t pa, uint64_t* v) override {
    EXPECT_EQ(pa & 7u, 0u) << "unaligned entry read at " << pa;
    ++reads;
    const uint64_t* w = word(pa);
    if (!w) return false;
    *v = *w;
    return true;
  }
  bool write64_low(uint64_t pa, uint32_t v) override {
    EXPECT_EQ(pa & 7u, 0u) << "unaligned entry write at " << pa;
    ++writes;
    uint64_t* w = word(pa);
    if (!w) return false;
    *w = (*w & 0xffffffff00000000u) | v;
    return true;
  }
  bool read32(uint32_t, uint32_t*) override {
    ADD_FAILURE() << "a PAE walk read a 4-byte word";
    return false;
  }
  bool write32(uint32_t, uint32_t) override {
    ADD_FAILURE() << "a PAE walk wrote a 4-byte word";
    return false;
  }
  uint64_t& at(uint64_t pa) {
    uint64_t* w = word(pa);
    if (!w) throw std::out_of_range("FakeRam64::at");
    return *w;
  }

  uint64_t bank;
  std::vector<uint64_t> low, high;
  int reads = 0;
  int writes = 0;
};

/// 64 KiB of guest RAM behind only the 4-byte interface (as ShadowMmu's PhysAccess is today):
/// PAE walks go through PhysAccess's default read64 / write64_low.
class Ram32 : public PhysAccess {
 public:
  bool read32(uint32_t pa, uint32_t* v) override {
    if (pa / 4 >= w.size()) return false;
    *v = w[pa / 4];
    return true;
  }
  bool write32(uint32_t pa, uint32_t v) override {
    written.push_back(pa);
    if (pa / 4 >= w.size()) return false;
    w[pa / 4] = v;
    return true;
  }
  std::vector<uint32_t> w = std::vector<uint32_t>(0x4000);
  std::vector<uint32_t> written;  ///< addresses of the write32 calls
};

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

/// A PAE mode whose PDPTE registers hold `pdpte0` for linear 0-1 GiB and `pdpte1` for 1-2 GiB.
PagingMode pae_mode(uint64_t pdpte0, bool nxe = true, bool wp = false, bool pge = false) {
  PagingMode m;
  m.pae = true;
  m.nxe = nxe;
  m.wp = wp;
  m.pge = pge;
  m.pdpte = {pdpte0, 0, 0, 0};
  return m;
}

constexpr Access kSupRd{}, kSupWr{.write = true}, kSupFetch{.fetch = true}, kUsrRd{.user = true},
    kUsrWr{.write = true, .user = true}, kUsrFetch{.user = true, .fetch = true};

// Error-code bits (SDM Figure 4-12).
constexpr uint32_t EcP = 1, EcW = 2, EcU = 4, EcRsvd = 8, EcId = 16;

// ---------------------------------------------------------------------------------------------
// 1. Exhaustive: every combination of P, R/W, U/S, PS, XD in the PDE and P, R/W, U/S, PAT, XD in
//    the PTE, for the six kinds of access, with CR0.WP and IA32_EFER.NXE on and off.
// ---------------------------------------------------------------------------------------------

/// The six kinds of access: {supervisor, user} x {read, write, fetch}.
struct Kind {
  const char* name;
  Access access;
  bool user, write, fetch;
};
constexpr Kind kKinds[] = {
    {"sup-read", kSupRd, false, false, false},    {"sup-write", kSupWr, false, true, false},
    {"sup-fetch", kSupFetch, false, false, true}, {"user-read", kUsrRd, true, false, false},
    {"user-write", kUsrWr, true, true, false},    {"user-fetch", kUsrFetch, true, false, true},
};

/// §4.6.1, written out for one access to a page whose combined rights are `user` (U/S=1 in
/// every entry), `writable` (R/W=1 in every entry) and `xd` (XD=1 in some entry, NXE=1):
/// supervisor reads and fetches anywhere (no SMEP); supervisor writes only to writable pages if
/// CR0.WP=1; user accesses only to user pages, user writes only to writable ones; fetches never
/// from an execute-disabled page.
bool sdm_allows(const Kind& k, bool user, bool writable, bool xd, bool wp) {
  if (k.fetch && xd) return false;
  if (k.user && !user) return false;
  if (k.write && (k.user || wp) && !writable) return false;
  return true;
}

/// Expected #PF error code (§4.7): P for a present translation (protection or reserved bit),
/// W/R for writes, U/S for user accesses, RSVD, and I/D for fetches when PAE and NXE are on.
uint32_t sdm_error(const Kind& k, bool present, bool rsvd, bool nxe) {
  return (present ? EcP : 0) | (k.write ? EcW : 0) | (k.user ? EcU : 0) | (rsvd ? EcRsvd : 0) |
         (k.fetch && nxe ? EcId : 0);
}

constexpr uint64_t kPd = 0x1000, kPt = 0x2000, kFrame = 0x5000;
constexpr uint32_t kLinear = 0x00603123;  // PDPTE 0, PD index 3, PT index 3, offset 0x123
constexpr uint64_t kPdeAddr = kPd + 3 * 8, kPteAddr = kPt + 3 * 8;
constexpr uint64_t kLarge2M = 0x00a00000;  // a 2 MiB frame (outside RAM: only entries are read)

/// bits 0..4 -> P, R/W, U/S, PS (or PAT in a PTE), XD
uint64_t flags(int bits, uint64_t bit3) {
  return ((bits & 1) ? P : 0) | ((bits & 2) ? RW : 0) | ((bits & 4) ? US : 0) |
         ((bits & 8) ? bit3 : 0) | ((bits & 16) ? XD : 0);
}

TEST(PageWalkerPaeTable, EveryCombinationOfPdeAndPteBits) {
  int walks = 0, successes = 0, rsvd_faults = 0, nx_faults = 0, large_pages = 0;
  for (int pde_bits = 0; pde_bits < 32; ++pde_bits) {
    for (int pte_bits = 0; pte_bits < 32; ++pte_bits) {
      for (bool wp : {false, true}) {
        for (bool nxe : {false, true}) {
          for (bool ad : {false, true}) {  // entries have A and D already
            const bool large = pde_bits & 8;
            const uint64_t pde0 = (large ? kLarge2M : kPt) | flags(pde_bits, PS) | (ad ? A | D : 0);
            const uint64_t pte0 = kFrame | flags(pte_bits, kPtePat) | (ad ? A | D : 0);
            // What the SDM says, level by level (§4.4.2): a not-present PDE ends the walk; a
            // present PDE with a reserved bit (XD without NXE) faults RSVD; a 2 MiB PDE maps the
            // page; otherwise the same for the PTE (PAT reserved without PAT).
            bool present = false, rsvd = false;
            bool user = false, writable = false, xd = false;
            if (pde_bits & 1) {
              if ((pde_bits & 16) && !nxe) {
                present = rsvd = true;
              } else if (large) {
                present = true;
                user = pde_bits & 4;
                writable = pde_bits & 2;
                xd = pde_bits & 16;
              } else if (pte_bits & 1) {
                present = true;
                rsvd = ((pte_bits & 16) && !nxe) || ((pte_bits & 8) && !kModelHasPat);
                user = (pde_bits & 4) && (pte_bits & 4);
                writable = (pde_bits & 2) && (pte_bits & 2);
                xd = (pde_bits & 16) || (pte_bits & 16);
              }
            }
            const PagingMode mode = pae_mode(kPd | P, nxe, wp);
            for (const Kind& k : kKinds) {
              FakeRam64 ram(0x3000);
              ram.at(kPdeAddr) = pde0;
              ram.at(kPteAddr) = pte0;
              const std::vector<uint64_t> before = ram.low;
              const std::string what = std::string(k.name) + " pde=" + hex(pde0) +
                                       " pte=" + hex(pte0) + " wp=" + std::to_string(wp) +
                                       " nxe=" + std::to_string(nxe);
              const WalkResult r = walk(ram, mode, kLinear, k.access);
              ++walks;
              const bool expect_ok = present && !rsvd && sdm_allows(k, user, writable, xd, wp);
              ASSERT_EQ(r.ok, expect_ok) << what;
              if (!r.ok) {
                EXPECT_EQ(r.error_code, sdm_error(k, present, rsvd, nxe)) << what;
                EXPECT_EQ(ram.low, before) << what << ": a fault must not touch A/D";
                EXPECT_EQ(ram.writes, 0) << what;
                rsvd_faults += rsvd;
                nx_faults += present && !rsvd && k.fetch && xd;
                if (present && !rsvd) {  // a protection fault describes the mapping
                  EXPECT_EQ(r.nx, xd) << what;
                  EXPECT_EQ(r.user_ok, user) << what;
                  EXPECT_EQ(r.writable, writable) << what;
                }
                continue;
              }
              ++successes;
              large_pages += large;
              EXPECT_EQ(r.large, large) << what;
              EXPECT_EQ(r.nx, xd) << what;
              EXPECT_EQ(r.user_ok, user) << what;
              EXPECT_EQ(r.user_write_ok, user && writable) << what;
              EXPECT_EQ(r.sup_write_ok, writable || !wp) << what;
              EXPECT_EQ(r.writable, writable) << what;
              EXPECT_EQ(r.pde_addr, kPdeAddr) << what;
              // §4.8: A in the PDE (and PTE); D in the entry that maps the page, on writes only.
              uint64_t pde1 = pde0 | A, pte1 = pte0;
              if (large) {
                EXPECT_EQ(r.phys, kLarge2M + (kLinear & 0x1fffff)) << what;
                EXPECT_EQ(r.page_base, kLarge2M + (kLinear & 0x1ff000)) << what;
                EXPECT_EQ(r.pte_addr, 0u) << what;
                if (k.write) pde1 |= D;
                EXPECT_EQ(r.dirty, (pde1 & D) != 0) << what;
              } else {
                EXPECT_EQ(r.phys, kFrame + 0x123) << what;
                EXPECT_EQ(r.page_base, kFrame) << what;
                EXPECT_EQ(r.pte_addr, kPteAddr) << what;
                pte1 |= A | (k.write ? D : 0);
                EXPECT_EQ(r.dirty, (pte1 & D) != 0) << what;
              }
              EXPECT_EQ(ram.at(kPdeAddr), pde1) << what;
              EXPECT_EQ(ram.at(kPteAddr), pte1) << what;
              EXPECT_EQ(ram.writes, (pde1 != pde0) + (pte1 != pte0)) << what;
              std::vector<uint64_t> others = ram.low, others_before = before;
              others[kPdeAddr / 8] = others[kPteAddr / 8] = 0;
              others_before[kPdeAddr / 8] = others_before[kPteAddr / 8] = 0;
              EXPECT_EQ(others, others_before) << what;
            }
            // probe reports the same mapping without checks or writes.
            FakeRam64 ram(0x3000);
            ram.at(kPdeAddr) = pde0;
            ram.at(kPteAddr) = pte0;
            const WalkResult pr = probe(ram, mode, kLinear);
            EXPECT_EQ(ram.writes, 0);
            ASSERT_EQ(pr.ok, present && !rsvd) << hex(pde0) << " " << hex(pte0);
            if (pr.ok) {
              EXPECT_EQ(pr.nx, xd);
              EXPECT_EQ(pr.user_ok, user);
              EXPECT_EQ(pr.writable, writable);
              EXPECT_EQ(pr.large, large);
            } else {
              EXPECT_EQ(pr.error_code, present ? EcP | EcRsvd : 0u);
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(walks, 32 * 32 * 2 * 2 * 2 * 6);
  EXPECT_GT(successes, 1000);
  EXPECT_GT(rsvd_faults, 500);
  EXPECT_GT(nx_faults, 300);
  EXPECT_GT(large_pages, 300);
}

// ---------------------------------------------------------------------------------------------
// 2. Reserved bits (§4.4.2, Tables 4-9 to 4-11): P=1 and RSVD=1 in the error code, no writes.
// ---------------------------------------------------------------------------------------------

/// Walks `linear` with a reserved bit in one entry for each kind of access and checks the fault.
void expect_reserved(FakeRam64& ram, const PagingMode& mode, const std::string& what) {
  for (const Kind& k : kKinds) {
    const std::vector<uint64_t> before = ram.low;
    const int writes = ram.writes;
    const WalkResult r = walk(ram, mode, kLinear, k.access);
    ASSERT_FALSE(r.ok) << what << " " << k.name;
    EXPECT_EQ(r.error_code, sdm_error(k, true, true, mode.nxe)) << what << " " << k.name;
    EXPECT_EQ(ram.writes, writes) << what << " " << k.name;
    EXPECT_EQ(ram.low, before) << what << " " << k.name;
  }
  const WalkResult pr = probe(ram, mode, kLinear);
  EXPECT_FALSE(pr.ok) << what;
  EXPECT_EQ(pr.error_code, EcP | EcRsvd) << what;
}

void expect_maps(FakeRam64& ram, const PagingMode& mode, uint64_t phys, const std::string& what) {
  const WalkResult r = walk(ram, mode, kLinear, kUsrWr);
  ASSERT_TRUE(r.ok) << what << " error " << hex(r.error_code);
  EXPECT_EQ(r.phys, phys) << what;
}

TEST(PageWalkerPaeReserved, HighBitsOfEveryPdeAndPte) {
  for (bool nxe : {false, true}) {
    const PagingMode mode = pae_mode(kPd | P, nxe);
    for (int bit = 12; bit <= 63; ++bit) {
      const uint64_t b = uint64_t{1} << bit;
      const bool reserved = bit >= M && (bit < 63 || !nxe);
      const std::string what = "bit " + std::to_string(bit) + " nxe=" + std::to_string(nxe);
      // In the PTE: bits 35:12 are the frame address, 62:36 reserved, 63 XD or reserved.
      {
        FakeRam64 ram;
        ram.at(kPdeAddr) = kPt | P | RW | US;
        ram.at(kPteAddr) = kFrame | b | P | RW | US;
        if (reserved) {
          expect_reserved(ram, mode, "PTE " + what);
        } else {
          expect_maps(ram, mode, ((kFrame | b) & ~XD) + 0x123, "PTE " + what);
        }
      }
      // In a PDE that references a page table: the same, with bits 35:12 the table's address.
      if (bit >= M) {
        FakeRam64 ram;
        ram.at(kPdeAddr) = kPt | b | P | RW | US;
        ram.at(kPteAddr) = kFrame | P | RW | US;
        if (reserved) {
          expect_reserved(ram, mode, "PDE " + what);
        } else {
          expect_maps(ram, mode, kFrame + 0x123, "PDE " + what);
        }
      }
      // In a 2 MiB PDE: also bits 20:13 (Table 4-9), and bit 12 (PAT) without PAT.
      {
        FakeRam64 ram;
        ram.at(kPdeAddr) = kLarge2M | b | PS | P | RW | US;
        const bool rsvd2m = reserved || (bit >= 13 && bit <= 20) || (bit == 12 && !kModelHasPat);
        if (rsvd2m) {
          expect_reserved(ram, mode, "2M PDE " + what);
        } else {
          const uint64_t frame = (kLarge2M | b) & ~XD & ~uint64_t{0x1fffff};
          expect_maps(ram, mode, frame + (kLinear & 0x1fffff), "2M PDE " + what);
        }
      }
    }
  }
}

TEST(PageWalkerPaeReserved, LowBitsAreNotReservedExceptPat) {
  // Bits 11:0 of a PDE and PTE are flags or ignored (Tables 4-10, 4-11); only the PAT bit of a PTE
  // (7) is reserved, and that only without PAT.
  const PagingMode mode = pae_mode(kPd | P, true);
  FakeRam64 ram;
  ram.at(kPdeAddr) = kPt | 0xe00 | G | D | PCD | PWT | P | RW | US;
  ram.at(kPteAddr) = kFrame | 0xe00 | G | PCD | PWT | P | RW | US;
  expect_maps(ram, mode, kFrame + 0x123, "low flags");
  ram.at(kPteAddr) |= kPtePat;
  if (kModelHasPat) {
    expect_maps(ram, mode, kFrame + 0x123, "PAT");
  } else {
    expect_reserved(ram, mode, "PAT");
  }
  ram.at(kPdeAddr) = kLarge2M | kPdePat | 0xe00 | G | PS | PCD | PWT | P | RW | US;
  if (kModelHasPat) {
    expect_maps(ram, mode, kLarge2M + (kLinear & 0x1fffff), "2M PAT");
  } else {
    expect_reserved(ram, mode, "2M PAT");
  }
}

TEST(PageWalkerPaeReserved, NotPresentBeatsReserved) {
  // A not-present entry has no reserved bits (§4.7: RSVD only where P=1): error code P=0.
  for (bool nxe : {false, true}) {
    const PagingMode mode = pae_mode(kPd | P, nxe);
    FakeRam64 ram;
    ram.at(kPdeAddr) = kPt | XD | (uint64_t{1} << 40) | RW | US;
    EXPECT_EQ(walk(ram, mode, kLinear, kUsrWr).error_code, EcW | EcU);
    EXPECT_EQ(walk(ram, mode, kLinear, kUsrFetch).error_code, EcU | (nxe ? EcId : 0));
    ram.at(kPdeAddr) = kPt | P | RW | US;
    ram.at(kPteAddr) = kFrame | XD | (uint64_t{1} << 50) | kPtePat | RW | US;
    EXPECT_EQ(walk(ram, mode, kLinear, kSupRd).error_code, 0u);
    EXPECT_EQ(ram.writes, 0);
  }
}

TEST(PageWalkerPaeReserved, ReservedBeatsProtection) {
  // A reserved bit is reported even where the rights would also deny the access: a user write
  // to a supervisor read-only page whose PTE has bit 40 set -> P | W | U | RSVD.
  FakeRam64 ram;
  ram.at(kPdeAddr) = kPt | P;
  ram.at(kPteAddr) = kFrame | (uint64_t{1} << 40) | P;
  const WalkResult r = walk(ram, pae_mode(kPd | P, true, true), kLinear, kUsrWr);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, EcP | EcW | EcU | EcRsvd);
  // And a fetch from an XD page with a reserved bit: RSVD and I/D.
  ram.at(kPteAddr) = kFrame | (uint64_t{1} << 40) | XD | P | US;
  EXPECT_EQ(walk(ram, pae_mode(kPd | P, true), kLinear, kUsrFetch).error_code,
            EcP | EcU | EcRsvd | EcId);
}

// ---------------------------------------------------------------------------------------------
// 3. The PDPTE registers (§4.4.1, Table 4-8).
// ---------------------------------------------------------------------------------------------

constexpr uint32_t kPdpt = 0x3fe0;  // 32-byte aligned, not page aligned

TEST(PageWalkerPaePdpte, LoadsTheFourEntriesFromCr3Bits31To5) {
  FakeRam64 ram;
  const std::array<uint64_t, 4> entries = {
      kPd | P, 0, kHigh | 0x3000 | PCD | PWT | 0xe00 | P,
      0xabcde000u | (uint64_t{0x5} << 32) | 0x10 /* PCD */ | P};
  for (int i = 0; i < 4; ++i) ram.at(kPdpt + 8 * i) = entries[i];
  // CR3 bits 4:3 (PWT, PCD) and 2:0 are ignored for locating the PDPT (Table 4-7).
  for (uint32_t low : {0u, 0x8u, 0x18u, 0x1fu}) {
    std::array<uint64_t, 4> loaded = {1, 2, 3, 4};
    ram.reads = 0;
    ASSERT_TRUE(load_pdptes(ram, kPdpt | low, &loaded)) << low;
    EXPECT_EQ(loaded, entries);
    EXPECT_EQ(ram.reads, 4);
    EXPECT_EQ(ram.writes, 0) << "loading the PDPTEs sets no A bit";
  }
  // Not-present PDPTEs may hold anything, reserved bits included.
  ram.at(kPdpt + 8) = 0xffffffffffffffeu;
  std::array<uint64_t, 4> loaded{};
  ASSERT_TRUE(load_pdptes(ram, kPdpt, &loaded));
  EXPECT_EQ(loaded[1], 0xffffffffffffffeu);
}

TEST(PageWalkerPaePdpte, PresentEntryWithReservedBitIsRefused) {
  // Table 4-8: bits 2:1, 8:5 and 63:MAXPHYADDR are reserved; bits 4:3 are PWT/PCD, 11:9 ignored,
  // 35:12 the page directory's address.
  for (int slot = 0; slot < 4; ++slot) {
    for (int bit = 1; bit <= 63; ++bit) {
      const bool reserved = (bit >= 1 && bit <= 2) || (bit >= 5 && bit <= 8) || bit >= M;
      FakeRam64 ram;
      for (int i = 0; i < 4; ++i) ram.at(kPdpt + 8 * i) = kPd | P;
      ram.at(kPdpt + 8 * slot) |= uint64_t{1} << bit;
      const std::array<uint64_t, 4> old = {7, 7, 7, 7};
      std::array<uint64_t, 4> loaded = old;
      const bool ok = load_pdptes(ram, kPdpt, &loaded);
      EXPECT_EQ(ok, !reserved) << "slot " << slot << " bit " << bit;
      if (!ok) {
        EXPECT_EQ(loaded, old) << "a #GP leaves the PDPTE registers as they were";
      } else {
        EXPECT_EQ(loaded[slot], kPd | P | (uint64_t{1} << bit));
      }
      // The same bit in a not-present PDPTE is fine.
      ram.at(kPdpt + 8 * slot) &= ~P;
      EXPECT_TRUE(load_pdptes(ram, kPdpt, &loaded)) << "slot " << slot << " bit " << bit;
    }
  }
}

TEST(PageWalkerPaePdpte, PdptOutsideRamIsRefused) {
  FakeRam64 ram;
  std::array<uint64_t, 4> loaded = {1, 2, 3, 4};
  EXPECT_FALSE(load_pdptes(ram, 0x7fffffe0u, &loaded));
  EXPECT_EQ(loaded, (std::array<uint64_t, 4>{1, 2, 3, 4}));
  // The last 32 bytes of the low bank are fine.
  EXPECT_TRUE(load_pdptes(ram, static_cast<uint32_t>(kBankBytes - 32), &loaded));
}

TEST(PageWalkerPaePdpte, WalkUsesTheRegistersNotThePdptInMemory) {
  FakeRam64 ram;
  ram.at(kPdpt) = kPd | P;
  PagingMode mode = pae_mode(0, true);
  mode.cr3 = kPdpt;
  ASSERT_TRUE(load_pdptes(ram, kPdpt, &mode.pdpte));
  ram.at(kPdeAddr) = kPt | P | RW | US;
  ram.at(kPteAddr) = kFrame | P | RW | US;
  ASSERT_TRUE(walk(ram, mode, kLinear, kUsrRd).ok);
  // The guest changes its PDPT without reloading CR3: translations still use the old PDPTE.
  ram.at(kPdpt) = 0;
  const int reads = ram.reads;
  ASSERT_TRUE(walk(ram, mode, kLinear, kUsrRd).ok);
  EXPECT_EQ(ram.reads - reads, 2) << "a walk reads the PDE and PTE, never the PDPT";
  EXPECT_EQ(ram.at(kPdpt), 0u) << "PDPTEs have no A bit";
  // And a PDPTE register that says not present faults with P=0, whatever the memory says.
  ram.at(kPdpt) = kPd | P;
  mode.pdpte[0] = kPd;
  EXPECT_EQ(walk(ram, mode, kLinear, kUsrWr).error_code, EcW | EcU);
  EXPECT_EQ(walk(ram, mode, kLinear, kSupFetch).error_code, EcId);
  EXPECT_FALSE(probe(ram, mode, kLinear).ok);
}

TEST(PageWalkerPaePdpte, EachQuarterOfTheLinearSpaceHasItsOwnPdpte) {
  // Linear bits 31:30 select the PDPTE (Figure 4-5); bits 29:21 the PDE.
  FakeRam64 ram;
  PagingMode mode = pae_mode(0, true);
  for (uint64_t i = 0; i < 4; ++i) {
    const uint64_t pd = 0x4000 + i * 0x1000;
    mode.pdpte[i] = pd | P;
    ram.at(pd + 0x1ff * 8) = (0x200000 * (i + 1)) | PS | P | RW;  // the last PDE: 2 MiB page
  }
  for (uint32_t i = 0; i < 4; ++i) {
    const uint32_t linear = (i << 30) | 0x3fe00000u | 0x1234u;
    const WalkResult r = walk(ram, mode, linear, kSupWr);
    ASSERT_TRUE(r.ok) << i;
    EXPECT_EQ(r.pde_addr, 0x4000u + i * 0x1000 + 0x1ff * 8);
    EXPECT_EQ(r.phys, 0x200000u * (i + 1) + 0x1234u);
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Execute-disable and the I/D bit (§4.6.1, §4.7).
// ---------------------------------------------------------------------------------------------

TEST(PageWalkerPaeNx, FetchFromXdPageFaultsWithPresentAndId) {
  for (bool xd_in_pde : {false, true}) {
    FakeRam64 ram;
    ram.at(kPdeAddr) = kPt | P | RW | US | (xd_in_pde ? XD : 0);
    ram.at(kPteAddr) = kFrame | P | RW | US | (xd_in_pde ? 0 : XD);
    const PagingMode mode = pae_mode(kPd | P, true);
    WalkResult r = walk(ram, mode, kLinear, kSupFetch);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error_code, EcP | EcId);
    EXPECT_TRUE(r.nx);
    r = walk(ram, mode, kLinear, kUsrFetch);
    EXPECT_EQ(r.error_code, EcP | EcU | EcId);
    // A fetch with Access::write set is still a fetch: no W/R in the error code.
    r = walk(ram, mode, kLinear, Access{.write = true, .user = true, .fetch = true});
    EXPECT_EQ(r.error_code, EcP | EcU | EcId);
    EXPECT_EQ(ram.writes, 0);
    // Reads and writes are allowed.
    r = walk(ram, mode, kLinear, kUsrWr);
    ASSERT_TRUE(r.ok);
    EXPECT_TRUE(r.nx);
  }
}

TEST(PageWalkerPaeNx, IdOnlyForFetchesWithNxe) {
  FakeRam64 ram;  // nothing mapped: every walk is a not-present fault
  EXPECT_EQ(walk(ram, pae_mode(kPd | P, true), kLinear, kUsrFetch).error_code, EcU | EcId);
  EXPECT_EQ(walk(ram, pae_mode(kPd | P, false), kLinear, kUsrFetch).error_code, EcU);
  EXPECT_EQ(walk(ram, pae_mode(kPd | P, true), kLinear, kUsrRd).error_code, EcU);
  // Protection fault on a fetch from a supervisor page by user code: I/D with NXE only.
  ram.at(kPdeAddr) = kPt | P | RW;
  ram.at(kPteAddr) = kFrame | P | RW;
  EXPECT_EQ(walk(ram, pae_mode(kPd | P, true), kLinear, kUsrFetch).error_code, EcP | EcU | EcId);
  EXPECT_EQ(walk(ram, pae_mode(kPd | P, false), kLinear, kUsrFetch).error_code, EcP | EcU);
  // Without NXE an executable page is executable and XD is no more than a reserved bit.
  EXPECT_TRUE(walk(ram, pae_mode(kPd | P, false), kLinear, kSupFetch).ok);
  EXPECT_FALSE(walk(ram, pae_mode(kPd | P, false), kLinear, kSupFetch).nx);
}

TEST(PageWalkerPaeNx, ThirtyTwoBitPagingHasNoNx) {
  // §4.1.1 / §4.7: NXE affects only PAE (and 4-level) paging; 32-bit paging never sets I/D and
  // has no XD bit (its entries are 4 bytes).
  Ram32 ram;
  PagingMode mode;
  mode.cr3 = 0x1000;
  mode.nxe = true;
  EXPECT_EQ(walk(ram, mode, 0x00401000, kUsrFetch).error_code, EcU);
  ram.w[0x1004 / 4] = 0x2000 | P | RW | US;
  ram.w[0x2004 / 4] = 0x5000 | P | RW | US;
  const WalkResult r = walk(ram, mode, 0x00401000, kUsrFetch);
  ASSERT_TRUE(r.ok);
  EXPECT_FALSE(r.nx);
}

// ---------------------------------------------------------------------------------------------
// 5. Large pages, A/D updates, G, addresses above 4 GiB.
// ---------------------------------------------------------------------------------------------

TEST(PageWalkerPaeLarge, TwoMiBPageIgnoresCr4Pse) {
  // PAE paging honours PS in a PDE whatever CR4.PSE says (§4.4.2, Table 4-9).
  for (bool pse : {false, true}) {
    FakeRam64 ram;
    // Linear 0x40c12345: PDPTE 1, PD index 6, offset 0x012345 into the 2 MiB page.
    ram.at(kPd + 6 * 8) = 0x7c00000u | G | PS | P | RW | US;
    PagingMode mode = pae_mode(0, true, false, true);
    mode.pdpte[1] = kPd | P;
    mode.pse = pse;
    const WalkResult r = walk(ram, mode, 0x40c12345u, kUsrWr);
    ASSERT_TRUE(r.ok);
    EXPECT_TRUE(r.large);
    EXPECT_EQ(r.phys, 0x7c12345u);
    EXPECT_EQ(r.page_base, 0x7c12000u);
    EXPECT_EQ(r.pde_addr, kPd + 48);
    EXPECT_EQ(r.pte_addr, 0u);
    EXPECT_TRUE(r.global);
    EXPECT_TRUE(r.dirty);
    EXPECT_EQ(ram.at(kPd + 48), 0x7c00000u | G | PS | P | RW | US | A | D);
    EXPECT_EQ(ram.writes, 1);
  }
}

TEST(PageWalkerPaeAccessedDirty, OnlyTheLowDwordAndOnlyWhenABitChanges) {
  FakeRam64 ram;
  // High dwords with XD and address bits 35:32 set: they must survive every A/D update.
  const uint64_t pde0 = kPt | P | RW | US;
  const uint64_t pte0 = XD | (uint64_t{0xf} << 32) | 0x12345000u | P | RW | US;
  ram.at(kPdeAddr) = pde0;
  ram.at(kPteAddr) = pte0;
  const PagingMode mode = pae_mode(kPd | P, true);
  WalkResult r = walk(ram, mode, kLinear, kUsrRd);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, 0xf12345123u);
  EXPECT_EQ(ram.writes, 2);
  EXPECT_EQ(ram.at(kPdeAddr), pde0 | A);
  EXPECT_EQ(ram.at(kPteAddr), pte0 | A);
  EXPECT_FALSE(r.dirty);
  ASSERT_TRUE(walk(ram, mode, kLinear, kUsrRd).ok);
  EXPECT_EQ(ram.writes, 2) << "A already set: no write";
  r = walk(ram, mode, kLinear, kUsrWr);
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.dirty);
  EXPECT_EQ(ram.writes, 3);
  EXPECT_EQ(ram.at(kPteAddr), pte0 | A | D);
  EXPECT_EQ(ram.at(kPdeAddr), pde0 | A) << "no D in a PDE referencing a page table";
  ASSERT_TRUE(walk(ram, mode, kLinear, kUsrWr).ok);
  EXPECT_EQ(ram.writes, 3);
}

TEST(PageWalkerPaeAccessedDirty, NothingWrittenOnAnyFault) {
  const PagingMode mode = pae_mode(kPd | P, true, true);
  FakeRam64 ram;
  ram.at(kPdeAddr) = kPt | P | RW | US;
  ram.at(kPteAddr) = kFrame | RW | US;  // not present
  EXPECT_EQ(walk(ram, mode, kLinear, kUsrRd).error_code, EcU);
  ram.at(kPteAddr) = kFrame | P | US;  // read-only: protection fault on a write
  EXPECT_EQ(walk(ram, mode, kLinear, kSupWr).error_code, EcP | EcW);
  ram.at(kPteAddr) = kFrame | XD | P | RW | US;  // XD: fetch faults
  EXPECT_EQ(walk(ram, mode, kLinear, kUsrFetch).error_code, EcP | EcU | EcId);
  ram.at(kPteAddr) = kFrame | (uint64_t{1} << 52) | P | RW | US;  // reserved
  EXPECT_EQ(walk(ram, mode, kLinear, kUsrRd).error_code, EcP | EcU | EcRsvd);
  EXPECT_EQ(ram.writes, 0);
  EXPECT_EQ(ram.at(kPdeAddr) & A, 0u);
}

TEST(PageWalkerPaeAccessedDirty, PageDirectoryUsedAsItsOwnPageTable) {
  // PDE 0x1ff of the directory points back at the directory: for linear 0x3fffe000 (PD index
  // 0x1ff, PT index 0x1fe) the PTE is PDE 0x1fe, and at 0x3ffff000 the PDE itself is the PTE.
  FakeRam64 ram;
  const uint64_t self = kPd | P | RW;
  ram.at(kPd + 0x1ff * 8) = self;
  const WalkResult r = walk(ram, pae_mode(kPd | P, true), 0x3ffff000u, kSupWr);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.pde_addr, r.pte_addr);
  EXPECT_EQ(r.phys, kPd);
  EXPECT_EQ(ram.at(kPd + 0x1ff * 8), self | A | D);
}

TEST(PageWalkerPaeGlobal, GlobalBitWithPge) {
  FakeRam64 ram;
  ram.at(kPdeAddr) = kPt | P | RW | G;  // bit 8 of a PDE referencing a table: ignored
  ram.at(kPteAddr) = kFrame | P | RW;
  EXPECT_FALSE(walk(ram, pae_mode(kPd | P, true, false, true), kLinear, kSupRd).global);
  ram.at(kPteAddr) |= G;
  EXPECT_TRUE(walk(ram, pae_mode(kPd | P, true, false, true), kLinear, kSupRd).global);
  EXPECT_FALSE(walk(ram, pae_mode(kPd | P, true, false, false), kLinear, kSupRd).global);
}

TEST(PageWalkerPaeHigh, FramesAndTablesAboveFourGiB) {
  FakeRam64 ram;
  // PDPTE -> page directory at 32 GiB -> page table at 32 GiB + 4 KiB -> frame at 60 GiB.
  const uint64_t pd = kHigh, pt = kHigh + 0x1000, frame = 0xf00001000u;
  PagingMode mode = pae_mode(pd | P, true);
  ram.at(pd + 3 * 8) = pt | P | RW | US;
  ram.at(pt + 3 * 8) = frame | P | RW | US;
  WalkResult r = walk(ram, mode, kLinear, kUsrWr);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, frame + 0x123);
  EXPECT_EQ(r.page_base, frame);
  EXPECT_EQ(r.pde_addr, pd + 24);
  EXPECT_EQ(r.pte_addr, pt + 24);
  EXPECT_EQ(ram.at(pt + 24), frame | P | RW | US | A | D);
  // The highest 4 KiB page below 2^36 and the highest 2 MiB page.
  ram.at(pt + 3 * 8) = 0xffffff000u | P;
  r = walk(ram, mode, kLinear | 0xfff, kSupRd);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, 0xfffffffffu);
  ram.at(pd + 3 * 8) = 0xfffe00000u | PS | P;
  r = walk(ram, mode, kLinear, kSupRd);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, 0xfffe00000u + (kLinear & 0x1fffff));
  EXPECT_EQ(r.page_base, 0xfffe00000u + (kLinear & 0x1ff000));
  // A table outside RAM counts as not present.
  ram.writes = 0;
  ram.at(pd + 3 * 8) = 0xa00000000u | P | RW | US;
  EXPECT_EQ(walk(ram, mode, kLinear, kUsrRd).error_code, EcU);
  mode.pdpte[0] = 0x900000000u | P;
  EXPECT_EQ(walk(ram, mode, kLinear, kSupWr).error_code, EcW);
  EXPECT_EQ(ram.writes, 0);
}

TEST(PageWalkerPaeDefaultAccess, FourByteInterfaceServesPaeBelowFourGiB) {
  // A PhysAccess with only read32/write32 (the ShadowMmu's today): read64 reads the two halves,
  // write64_low writes the low one, and nothing lies at or above 4 GiB.
  Ram32 ram;
  ram.w[kPdeAddr / 4] = kPt | P | RW | US;
  ram.w[kPteAddr / 4] = kFrame | P | RW | US;
  ram.w[kPteAddr / 4 + 1] = 0x80000003u;  // XD, frame bits 33:32
  const PagingMode mode = pae_mode(kPd | P, true);
  WalkResult r = walk(ram, mode, kLinear, kUsrWr);
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.nx);
  EXPECT_EQ(r.phys, 0x300005123u);
  EXPECT_EQ(ram.written, (std::vector<uint32_t>{kPdeAddr, kPteAddr}))
      << "only the low dword of each entry is written";
  EXPECT_EQ(ram.w[kPteAddr / 4 + 1], 0x80000003u);
  EXPECT_EQ(ram.w[kPteAddr / 4], kFrame | P | RW | US | A | D);
  // A page directory at 4 GiB or above is outside this RAM: not present.
  r = walk(ram, pae_mode(0x100000000u | P, true), kLinear, kUsrRd);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, EcU);
  uint64_t v = 0;
  EXPECT_FALSE(ram.read64(0xfffffffcu, &v)) << "an entry straddling 4 GiB";
  EXPECT_FALSE(ram.write64_low(0x100000000u, 0));
  // load_pdptes through the same interface.
  ram.w[0x3000 / 4] = kPd | P;
  std::array<uint64_t, 4> loaded{};
  ASSERT_TRUE(load_pdptes(ram, 0x3000, &loaded));
  EXPECT_EQ(loaded[0], kPd | P);
}

// ---------------------------------------------------------------------------------------------
// 6. Property test: random PAE structures against a reference walker written from the SDM.
// ---------------------------------------------------------------------------------------------

/// Bits hi:lo of v (SDM notation).
uint64_t field(uint64_t v, int hi, int lo) {
  const uint64_t width = static_cast<uint64_t>(hi - lo + 1);
  return (v >> lo) & (width == 64 ? ~uint64_t{0} : (uint64_t{1} << width) - 1);
}

/// The reference memory: two banks of 64-bit words, as FakeRam64 holds them.
struct RefMem {
  std::vector<uint64_t> low, high;
  uint64_t* at(uint64_t pa) {
    if (pa < kBankBytes) return &low[pa / 8];
    if (pa >= kHigh && pa - kHigh < kBankBytes) return &high[(pa - kHigh) / 8];
    return nullptr;
  }
};

/// §4.4.1: the PDPTE load is a #GP when a present PDPTE has bits 2:1, 8:5 or 63:M set.
bool ref_pdpte_ok(uint64_t e) {
  if (!field(e, 0, 0)) return true;
  return field(e, 2, 1) == 0 && field(e, 8, 5) == 0 && field(e, 63, M) == 0;
}

/// The reference walk (§4.4.2, §4.6.1, §4.7, §4.8), on `mem`: A/D set on success.
WalkResult ref_walk(RefMem& mem, const PagingMode& m, uint32_t lin, const Access& acc) {
  WalkResult r;
  const bool fetch = acc.fetch, write = acc.write && !acc.fetch;
  const uint32_t ec = (write ? 2u : 0u) | (acc.user ? 4u : 0u) | (fetch && m.nxe ? 16u : 0u);
  // Reserved in a PDE/PTE: 62:M; 63 unless NXE; for a 2 MiB PDE 20:13 (and 12 without PAT);
  // for a PTE 7 without PAT.
  auto rsvd = [&](uint64_t e, int level /* 2 = 2 MiB PDE, 1 = PDE -> PT, 0 = PTE */) {
    if (field(e, 62, M)) return true;
    if (!m.nxe && field(e, 63, 63)) return true;
    if (level == 2 && field(e, 20, 13)) return true;
    if (level == 2 && !kModelHasPat && field(e, 12, 12)) return true;
    if (level == 0 && !kModelHasPat && field(e, 7, 7)) return true;
    return false;
  };
  const uint64_t pdpte = m.pdpte[field(lin, 31, 30)];
  if (!field(pdpte, 0, 0)) {
    r.error_code = ec;
    return r;
  }
  const uint64_t pde_addr = (field(pdpte, M - 1, 12) << 12) | (field(lin, 29, 21) << 3);
  uint64_t* pde = mem.at(pde_addr);
  if (!pde || !field(*pde, 0, 0)) {
    r.error_code = ec;
    return r;
  }
  const bool large = field(*pde, 7, 7);
  if (rsvd(*pde, large ? 2 : 1)) {
    r.error_code = ec | 1 | 8;
    return r;
  }
  uint64_t* pte = nullptr;
  uint64_t pte_addr = 0, phys;
  bool user = field(*pde, 2, 2), writable = field(*pde, 1, 1), xd = m.nxe && field(*pde, 63, 63);
  if (large) {
    phys = (field(*pde, M - 1, 21) << 21) | field(lin, 20, 0);
  } else {
    pte_addr = (field(*pde, M - 1, 12) << 12) | (field(lin, 20, 12) << 3);
    pte = mem.at(pte_addr);
    if (!pte || !field(*pte, 0, 0)) {
      r.error_code = ec;
      return r;
    }
    if (rsvd(*pte, 0)) {
      r.error_code = ec | 1 | 8;
      return r;
    }
    user = user && field(*pte, 2, 2);
    writable = writable && field(*pte, 1, 1);
    xd = xd || (m.nxe && field(*pte, 63, 63));
    phys = (field(*pte, M - 1, 12) << 12) | field(lin, 11, 0);
  }
  bool allowed = true;
  if (acc.user && !user) allowed = false;
  if (write && !writable && (acc.user || m.wp)) allowed = false;
  if (fetch && xd) allowed = false;
  if (!allowed) {
    r.error_code = ec | 1;
    return r;
  }
  uint64_t* final_entry = large ? pde : pte;
  *pde |= A;
  if (pte) *pte |= A;
  if (write) *final_entry |= D;
  r.ok = true;
  r.phys = phys;
  r.page_base = phys >> 12 << 12;
  r.large = large;
  r.global = m.pge && field(*final_entry, 8, 8);
  r.user_ok = user;
  r.user_write_ok = user && writable;
  r.sup_write_ok = writable || !m.wp;
  r.writable = writable;
  r.dirty = field(*final_entry, 6, 6);
  r.nx = xd;
  r.pde_addr = pde_addr;
  r.pte_addr = pte_addr;
  return r;
}

void expect_same(const WalkResult& got, const WalkResult& want, const std::string& what) {
  ASSERT_EQ(got.ok, want.ok) << what << " error " << hex(got.error_code) << " want "
                             << hex(want.error_code);
  if (!want.ok) {
    EXPECT_EQ(got.error_code, want.error_code) << what;
    return;
  }
  EXPECT_EQ(got.phys, want.phys) << what;
  EXPECT_EQ(got.page_base, want.page_base) << what;
  EXPECT_EQ(got.large, want.large) << what;
  EXPECT_EQ(got.global, want.global) << what;
  EXPECT_EQ(got.user_ok, want.user_ok) << what;
  EXPECT_EQ(got.user_write_ok, want.user_write_ok) << what;
  EXPECT_EQ(got.sup_write_ok, want.sup_write_ok) << what;
  EXPECT_EQ(got.writable, want.writable) << what;
  EXPECT_EQ(got.dirty, want.dirty) << what;
  EXPECT_EQ(got.nx, want.nx) << what;
  EXPECT_EQ(got.pde_addr, want.pde_addr) << what;
  EXPECT_EQ(got.pte_addr, want.pte_addr) << what;
}

TEST(PageWalkerPaeProperty, RandomStructuresMatchReferenceWalker) {
  constexpr uint64_t kPages = kBankBytes / 4096;  // 16 pages per bank
  std::mt19937_64 rng(0x9ae5eedu);
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  // A page of either bank (90%), or anywhere below 2^36 (mostly outside RAM).
  auto random_frame = [&]() -> uint64_t {
    if (chance(90)) return (chance(70) ? 0 : kHigh) + (rng() % kPages) * 4096;
    return rng() & 0xffffff000u;
  };
  // An entry-like word: P 90%, R/W 75%, U/S 75%, PS 25%, XD 20%; PWT, PCD, A, D, G, PAT and the
  // ignored bits 11:9 at 50%; a reserved bit 62:36 now and then; 2 MiB frames mostly clean.
  auto random_entry = [&]() {
    uint64_t v = rng() & (0xe00u | G | kPtePat | D | A | PCD | PWT);
    v |= chance(90) ? P : 0;
    v |= chance(75) ? RW : 0;
    v |= chance(75) ? US : 0;
    v |= chance(20) ? XD : 0;
    v |= chance(6) ? uint64_t{1} << (M + rng() % (63 - M)) : 0;
    v |= random_frame();
    if (chance(25)) {
      v |= PS;
      if (chance(80)) v &= ~uint64_t{0x1fe000};  // else bits 20:13 (reserved) may stay
    }
    return v;
  };
  // A PDPTE candidate: mostly valid (a page of RAM), sometimes not present or with reserved bits.
  auto random_pdpte = [&]() {
    uint64_t v = random_frame() | (rng() & (0xe00u | PCD | PWT));
    v |= chance(90) ? P : 0;
    if (chance(10)) v |= uint64_t{1} << (std::array<int, 8>{1, 2, 5, 6, 7, 8, 40, 63}[rng() % 8]);
    return v;
  };

  FakeRam64 ram;
  int walks = 0, oks = 0, not_present = 0, reserved = 0, protection = 0, nx = 0, large = 0,
      high = 0, gp = 0;
  for (int round = 0; round < 300; ++round) {
    for (uint64_t& w : ram.low) w = random_entry();
    for (uint64_t& w : ram.high) w = random_entry();
    ram.writes = 0;
    PagingMode mode;
    mode.pae = true;
    // The PDPT: 32 bytes in the low bank at a random 32-byte boundary (CR3 bits 4:0 ignored).
    mode.cr3 = static_cast<uint32_t>((rng() % (kBankBytes / 32)) * 32 + rng() % 32);
    const uint32_t pdpt = mode.cr3 & ~31u;
    for (int i = 0; i < 4; ++i) ram.at(pdpt + 8 * i) = random_pdpte();
    std::array<uint64_t, 4> loaded = {5, 6, 7, 8};
    bool want_load = true;
    for (int i = 0; i < 4; ++i) want_load &= ref_pdpte_ok(ram.at(pdpt + 8 * i));
    ASSERT_EQ(load_pdptes(ram, mode.cr3, &loaded), want_load) << "round " << round;
    if (!want_load) {
      ++gp;
      EXPECT_EQ(loaded, (std::array<uint64_t, 4>{5, 6, 7, 8}));
      // The guest fixes its PDPT and reloads CR3.
      for (int i = 0; i < 4; ++i) {
        uint64_t& e = ram.at(pdpt + 8 * i);
        if (!ref_pdpte_ok(e)) e &= ~(uint64_t{0x1e6} | (~uint64_t{0} << M));
      }
      ASSERT_TRUE(load_pdptes(ram, mode.cr3, &loaded));
    }
    for (int i = 0; i < 4; ++i) EXPECT_EQ(loaded[i], ram.at(pdpt + 8 * i));
    mode.pdpte = loaded;
    RefMem ref{ram.low, ram.high};
    uint32_t pool[8];
    for (uint32_t& l : pool) l = static_cast<uint32_t>(rng());
    for (int i = 0; i < 25; ++i) {
      mode.wp = chance(50);
      mode.pge = chance(50);
      mode.nxe = chance(70);
      mode.pse = chance(50);  // ignored by PAE paging
      const uint32_t linear =
          static_cast<uint32_t>(chance(50) ? pool[rng() % 8] ^ (rng() & 0xfff) : rng());
      Access acc;
      acc.write = chance(40);
      acc.user = chance(50);
      acc.fetch = chance(25);
      const std::string what =
          "round " + std::to_string(round) + " walk " + std::to_string(i) +
          " linear=" + hex(linear) + " wp=" + std::to_string(mode.wp) +
          " nxe=" + std::to_string(mode.nxe) + " write=" + std::to_string(acc.write) +
          " user=" + std::to_string(acc.user) + " fetch=" + std::to_string(acc.fetch);
      // probe first: it reports the mapping and must not change memory.
      const int writes_before = ram.writes;
      const WalkResult pr = probe(ram, mode, linear);
      EXPECT_EQ(ram.writes, writes_before) << what;
      RefMem scratch = ref;
      const WalkResult want_probe = ref_walk(scratch, mode, linear, Access{});
      ASSERT_EQ(pr.ok, want_probe.ok) << what;
      if (pr.ok) {
        EXPECT_EQ(pr.phys, want_probe.phys) << what;
        EXPECT_EQ(pr.nx, want_probe.nx) << what;
        EXPECT_EQ(pr.user_ok, want_probe.user_ok) << what;
        EXPECT_EQ(pr.user_write_ok, want_probe.user_write_ok) << what;
        EXPECT_EQ(pr.sup_write_ok, want_probe.sup_write_ok) << what;
        EXPECT_EQ(pr.large, want_probe.large) << what;
      } else {
        EXPECT_EQ(pr.error_code, want_probe.error_code) << what;
      }

      const WalkResult got = walk(ram, mode, linear, acc);
      const WalkResult want = ref_walk(ref, mode, linear, acc);
      expect_same(got, want, what);
      ASSERT_EQ(ram.low, ref.low) << what << ": A/D state differs";
      ASSERT_EQ(ram.high, ref.high) << what << ": A/D state differs";
      ++walks;
      if (got.ok) {
        ++oks;
        large += got.large;
        high += got.phys >= (uint64_t{1} << 32);
      } else if (!(got.error_code & EcP)) {
        ++not_present;
      } else if (got.error_code & EcRsvd) {
        ++reserved;
      } else {
        ++protection;
        nx += acc.fetch && got.nx;
      }
    }
  }
  EXPECT_EQ(walks, 7500);
  // The random structures reach every outcome often enough to mean something.
  EXPECT_GT(oks, 1000);
  EXPECT_GT(large, 200);
  EXPECT_GT(high, 100);
  EXPECT_GT(not_present, 500);
  EXPECT_GT(reserved, 500);
  EXPECT_GT(protection, 300);
  EXPECT_GT(nx, 50);
  EXPECT_GT(gp, 30);
}

}  // namespace
}  // namespace vmbt
