// The guest page-table walker against Intel SDM Vol. 3A §4.3 (32-bit paging), §4.6.1 (access
// rights), §4.7 (page-fault error code) and §4.8 (accessed and dirty flags).
#include "shadow_mmu/page_walker.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vmm/cpu_model.h"

namespace vmbt {
namespace {

// Entry bits, spelled out here from SDM Tables 4-4 to 4-6 rather than taken from the header.
constexpr uint32_t P = 1u << 0, RW = 1u << 1, US = 1u << 2, A = 1u << 5, D = 1u << 6, PS = 1u << 7,
                   G = 1u << 8;
/// The CPU model's CPUID.1:EDX PAT bit (16): without PAT, PTE bit 7 and 4 MiB PDE bit 12 are
/// reserved when CR4.PSE=1 (§4.3).
constexpr bool kModelHasPat = (CpuModel::kFeaturesEdx >> 16) & 1;

/// Guest RAM at guest-physical 0 as 32-bit words; everything above it is outside RAM.
class FakeRam : public PhysAccess {
 public:
  explicit FakeRam(uint32_t bytes) : words(bytes / 4) {}
  bool read32(uint32_t pa, uint32_t* v) override {
    EXPECT_EQ(pa & 3u, 0u) << "unaligned entry read at " << pa;
    ++reads;
    if (pa / 4 >= words.size()) return false;
    *v = words[pa / 4];
    return true;
  }
  bool write32(uint32_t pa, uint32_t v) override {
    EXPECT_EQ(pa & 3u, 0u) << "unaligned entry write at " << pa;
    ++writes;
    if (pa / 4 >= words.size()) return false;
    words[pa / 4] = v;
    return true;
  }
  uint32_t& at(uint32_t pa) { return words.at(pa / 4); }

  std::vector<uint32_t> words;
  int reads = 0;
  int writes = 0;
};

std::string hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%#x", v);
  return buf;
}

// ---------------------------------------------------------------------------------------------
// 1. The exhaustive permission table.
// ---------------------------------------------------------------------------------------------

/// §4.6.1 as a table. The protection of a page combines all entries that map it: it is a
/// user-mode page only if U/S=1 in every entry, and writable only if R/W=1 in every entry.
enum Prot { kSupRO, kSupRW, kUserRO, kUserRW };
enum Who { kSupRead, kSupWriteWp0, kSupWriteWp1, kUserRead, kUserWrite };
constexpr bool kAllowed[5][4] = {
    //                 sup-RO sup-RW user-RO user-RW
    /* kSupRead     */ {true, true, true, true},     // supervisor reads: any page
    /* kSupWriteWp0 */ {true, true, true, true},     // CR0.WP=0: supervisor writes anywhere
    /* kSupWriteWp1 */ {false, true, false, true},   // CR0.WP=1: only writable pages
    /* kUserRead    */ {false, false, true, true},   // user: only user pages
    /* kUserWrite   */ {false, false, false, true},  // user writes: writable user pages
};

Prot combine(bool all_user, bool all_writable) {
  if (all_user) return all_writable ? kUserRW : kUserRO;
  return all_writable ? kSupRW : kSupRO;
}

Who who(bool user, bool write, bool wp) {
  if (user) return write ? kUserWrite : kUserRead;
  if (!write) return kSupRead;
  return wp ? kSupWriteWp1 : kSupWriteWp0;
}

/// The six kinds of access: {supervisor, user} x {read, write, fetch}.
struct Kind {
  const char* name;
  Access access;
  bool user, write;  // as the rules see it: a fetch is a read (§4.6.1, no NX)
};
constexpr Kind kKinds[] = {
    {"sup-read", {false, false, false}, false, false},
    {"sup-write", {true, false, false}, false, true},
    {"sup-fetch", {false, false, true}, false, false},
    {"user-read", {false, true, false}, true, false},
    {"user-write", {true, true, false}, true, true},
    {"user-fetch", {false, true, true}, true, false},
};

/// Error code of §4.7 for an access: P (bit 0) = 1 for a protection violation, W/R (bit 1),
/// U/S (bit 2); I/D (bit 4) stays 0 without NX.
uint32_t expected_error(bool present, const Kind& k) {
  return (present ? 1u : 0u) | (k.write ? 2u : 0u) | (k.user ? 4u : 0u);
}

constexpr uint32_t kPd = 0x1000, kPt = 0x2000, kFrame = 0x5000;
constexpr uint32_t kLinear = 0x00403123;  // PD index 1, PT index 3, offset 0x123
constexpr uint32_t kPdeAddr = kPd + 1 * 4, kPteAddr = kPt + 3 * 4;
constexpr uint32_t kLarge = 0x00800000;  // a 4 MiB frame (outside RAM: only entries are read)

uint32_t flags(int bits) {  // bits 0..2 -> P, R/W, U/S
  return ((bits & 1) ? P : 0) | ((bits & 2) ? RW : 0) | ((bits & 4) ? US : 0);
}

TEST(PageWalkerTable, FourKiBPagesEveryCombination) {
  int walks = 0, successes = 0;
  for (int pde_bits = 0; pde_bits < 8; ++pde_bits) {
    for (int pte_bits = 0; pte_bits < 8; ++pte_bits) {
      for (bool wp : {false, true}) {
        for (int ad = 0; ad < 4; ++ad) {  // bit 0: PDE has A, bit 1: PTE has A and D already
          const uint32_t pde0 = kPt | flags(pde_bits) | ((ad & 1) ? A : 0);
          const uint32_t pte0 = kFrame | flags(pte_bits) | ((ad & 2) ? A | D : 0);
          const bool present = (pde_bits & 1) && (pte_bits & 1);
          const Prot prot =
              combine((pde_bits & 4) && (pte_bits & 4), (pde_bits & 2) && (pte_bits & 2));
          const PagingMode mode{.cr3 = kPd, .pse = false, .wp = wp};
          bool ok_by_kind[6] = {};
          WalkResult results[6];
          for (int ki = 0; ki < 6; ++ki) {
            const Kind& k = kKinds[ki];
            FakeRam ram(0x8000);
            ram.at(kPdeAddr) = pde0;
            ram.at(kPteAddr) = pte0;
            const std::vector<uint32_t> before = ram.words;
            const std::string what = std::string(k.name) + " pde=" + hex(pde0) +
                                     " pte=" + hex(pte0) + " wp=" + std::to_string(wp);
            const WalkResult r = walk(ram, mode, kLinear, k.access);
            ++walks;
            const bool expect_ok = present && kAllowed[who(k.user, k.write, wp)][prot];
            ASSERT_EQ(r.ok, expect_ok) << what;
            ok_by_kind[ki] = r.ok;
            results[ki] = r;
            if (!r.ok) {
              EXPECT_EQ(r.error_code, expected_error(present, k)) << what;
              EXPECT_EQ(ram.words, before) << what << ": a fault must not touch A/D";
              EXPECT_EQ(ram.writes, 0) << what;
              continue;
            }
            ++successes;
            EXPECT_EQ(r.phys, kFrame + 0x123) << what;
            EXPECT_EQ(r.page_base, kFrame) << what;
            EXPECT_FALSE(r.large) << what;
            EXPECT_EQ(r.pde_addr, kPdeAddr) << what;
            EXPECT_EQ(r.pte_addr, kPteAddr) << what;
            // §4.8: A in both entries; D in the PTE only, and only for a write (the D bit of a
            // PDE that references a page table is ignored, Table 4-5).
            const uint32_t pde1 = pde0 | A;
            const uint32_t pte1 = pte0 | A | (k.write ? D : 0);
            EXPECT_EQ(ram.at(kPdeAddr), pde1) << what;
            EXPECT_EQ(ram.at(kPteAddr), pte1) << what;
            EXPECT_EQ(r.dirty, (pte1 & D) != 0) << what;
            // Entries are written only when a flag changes.
            EXPECT_EQ(ram.writes, (pde1 != pde0) + (pte1 != pte0)) << what;
            std::vector<uint32_t> others = ram.words, others_before = before;
            others[kPdeAddr / 4] = others[kPteAddr / 4] = 0;
            others_before[kPdeAddr / 4] = others_before[kPteAddr / 4] = 0;
            EXPECT_EQ(others, others_before) << what;
          }
          // The summary flags agree with what the corresponding walks said.
          for (int ki = 0; ki < 6; ++ki) {
            if (!results[ki].ok && !(results[ki].error_code & 1)) continue;  // not present
            const std::string what = std::string(kKinds[ki].name) + " pde=" + hex(pde0) +
                                     " pte=" + hex(pte0) + " wp=" + std::to_string(wp);
            EXPECT_EQ(results[ki].user_ok, ok_by_kind[3]) << what;
            EXPECT_EQ(results[ki].user_write_ok, ok_by_kind[4]) << what;
            EXPECT_EQ(results[ki].sup_write_ok, ok_by_kind[1]) << what;
            EXPECT_TRUE(ok_by_kind[0] && ok_by_kind[2]) << what << ": supervisor reads any page";
            EXPECT_EQ(ok_by_kind[5], ok_by_kind[3]) << what << ": fetch = read";
          }
          if (present) {
            FakeRam ram(0x8000);
            ram.at(kPdeAddr) = pde0;
            ram.at(kPteAddr) = pte0;
            const WalkResult pr = probe(ram, mode, kLinear);
            EXPECT_TRUE(pr.ok);
            EXPECT_EQ(pr.user_ok, ok_by_kind[3]);
            EXPECT_EQ(pr.user_write_ok, ok_by_kind[4]);
            EXPECT_EQ(pr.sup_write_ok, ok_by_kind[1]);
            EXPECT_EQ(ram.writes, 0);
          }
        }
      }
    }
  }
  EXPECT_EQ(walks, 8 * 8 * 2 * 4 * 6);
  EXPECT_GT(successes, 0);
}

TEST(PageWalkerTable, FourMiBPagesEveryCombination) {
  int walks = 0;
  for (int pde_bits = 0; pde_bits < 8; ++pde_bits) {
    for (bool wp : {false, true}) {
      for (bool ad_set : {false, true}) {
        const uint32_t pde0 = kLarge | PS | flags(pde_bits) | (ad_set ? A | D : 0);
        const bool present = pde_bits & 1;
        const Prot prot = combine(pde_bits & 4, pde_bits & 2);
        const PagingMode mode{.cr3 = kPd, .pse = true, .wp = wp};
        bool ok_by_kind[6] = {};
        WalkResult results[6];
        for (int ki = 0; ki < 6; ++ki) {
          const Kind& k = kKinds[ki];
          FakeRam ram(0x8000);
          ram.at(kPdeAddr) = pde0;
          const std::vector<uint32_t> before = ram.words;
          const std::string what =
              std::string(k.name) + " pde=" + hex(pde0) + " wp=" + std::to_string(wp);
          const WalkResult r = walk(ram, mode, kLinear, k.access);
          ++walks;
          const bool expect_ok = present && kAllowed[who(k.user, k.write, wp)][prot];
          ASSERT_EQ(r.ok, expect_ok) << what;
          ok_by_kind[ki] = r.ok;
          results[ki] = r;
          if (!r.ok) {
            EXPECT_EQ(r.error_code, expected_error(present, k)) << what;
            EXPECT_EQ(ram.words, before) << what;
            EXPECT_EQ(ram.writes, 0) << what;
            continue;
          }
          // Figure 4-3: bits 31:22 from the PDE, 21:0 from the linear address.
          EXPECT_EQ(r.phys, kLarge + 0x003123) << what;
          EXPECT_EQ(r.page_base, kLarge + 0x003000) << what;
          EXPECT_TRUE(r.large) << what;
          EXPECT_EQ(r.pde_addr, kPdeAddr) << what;
          EXPECT_EQ(r.pte_addr, 0u) << what;
          // §4.8: the 4 MiB PDE is the final entry: A always, D on a write.
          const uint32_t pde1 = pde0 | A | (k.write ? D : 0);
          EXPECT_EQ(ram.at(kPdeAddr), pde1) << what;
          EXPECT_EQ(r.dirty, (pde1 & D) != 0) << what;
          EXPECT_EQ(ram.writes, pde1 != pde0 ? 1 : 0) << what;
        }
        for (int ki = 0; ki < 6; ++ki) {
          if (!results[ki].ok && !(results[ki].error_code & 1)) continue;
          EXPECT_EQ(results[ki].user_ok, ok_by_kind[3]) << kKinds[ki].name << hex(pde0);
          EXPECT_EQ(results[ki].user_write_ok, ok_by_kind[4]) << kKinds[ki].name << hex(pde0);
          EXPECT_EQ(results[ki].sup_write_ok, ok_by_kind[1]) << kKinds[ki].name << hex(pde0);
        }
      }
    }
  }
  EXPECT_EQ(walks, 8 * 2 * 2 * 6);
}

// ---------------------------------------------------------------------------------------------
// 2. Property test against a second, deliberately simple reference walker.
// ---------------------------------------------------------------------------------------------

/// What one linear page of a 4 MiB region maps to, according to the reference.
struct RefPage {
  enum Kind { kAbsent, kReserved, kMapped } kind = kAbsent;
  uint32_t frame = 0;  // guest-physical base of the 4 KiB frame
  bool user = false, writable = false, global = false, large = false;
  uint32_t pde_addr = 0, pte_addr = 0;  // entries used by the translation (get A); pte: 4 KiB
  uint32_t final_addr = 0;              // entry that maps the page (gets D)
};

std::optional<uint32_t> ref_read(const std::vector<uint32_t>& ram, uint32_t pa) {
  if (pa / 4 >= ram.size()) return std::nullopt;
  return ram[pa / 4];
}

/// Maps every 4 KiB page of the 4 MiB region `region` (linear bits 31:22) straight from the
/// SDM's description: one PDE, then either one 4 MiB page or a page table of 1024 PTEs.
std::array<RefPage, 1024> ref_map_region(const std::vector<uint32_t>& ram, const PagingMode& m,
                                         uint32_t region) {
  std::array<RefPage, 1024> pages{};
  const uint32_t pd = m.cr3 / 4096 * 4096;  // Table 4-3: bits 31:12 of CR3
  const uint32_t pde_addr = pd + region * 4;
  const std::optional<uint32_t> pde = ref_read(ram, pde_addr);
  if (!pde || !(*pde & P)) return pages;  // all absent
  const bool maps_4m = m.pse && (*pde & PS);
  if (maps_4m) {
    // Reserved with PSE and no PSE-36: bits 21:13; bit 12 too without PAT.
    bool reserved = false;
    for (int bit = 13; bit <= 21; ++bit) reserved |= (*pde >> bit) & 1;
    if (!kModelHasPat) reserved |= (*pde >> 12) & 1;
    for (uint32_t i = 0; i < 1024; ++i) {
      RefPage& pg = pages[i];
      pg.kind = reserved ? RefPage::kReserved : RefPage::kMapped;
      pg.frame = (*pde >> 22 << 22) + i * 4096;
      pg.user = *pde & US;
      pg.writable = *pde & RW;
      pg.global = m.pge && (*pde & G);
      pg.large = true;
      pg.pde_addr = pg.final_addr = pde_addr;
    }
    return pages;
  }
  const uint32_t pt = *pde / 4096 * 4096;
  for (uint32_t i = 0; i < 1024; ++i) {
    RefPage& pg = pages[i];
    const uint32_t pte_addr = pt + i * 4;
    const std::optional<uint32_t> pte = ref_read(ram, pte_addr);
    if (!pte || !(*pte & P)) continue;
    const bool reserved = m.pse && !kModelHasPat && (*pte & (1u << 7));
    pg.kind = reserved ? RefPage::kReserved : RefPage::kMapped;
    pg.frame = *pte / 4096 * 4096;
    pg.user = (*pde & US) && (*pte & US);
    pg.writable = (*pde & RW) && (*pte & RW);
    pg.global = m.pge && (*pte & G);
    pg.pde_addr = pde_addr;
    pg.pte_addr = pg.final_addr = pte_addr;
  }
  return pages;
}

/// The reference outcome of one access, applying A/D to `ram` on success.
WalkResult ref_walk(std::vector<uint32_t>& ram, const PagingMode& m, uint32_t linear,
                    const Access& acc) {
  const bool write = acc.write && !acc.fetch;
  const std::array<RefPage, 1024> region = ref_map_region(ram, m, linear >> 22);
  const RefPage& pg = region[(linear >> 12) & 1023];
  WalkResult r;
  const uint32_t access_bits = (write ? 2u : 0u) | (acc.user ? 4u : 0u);
  if (pg.kind == RefPage::kAbsent) {
    r.error_code = access_bits;
    return r;
  }
  if (pg.kind == RefPage::kReserved) {
    r.error_code = 1u | 8u | access_bits;
    return r;
  }
  const Prot prot = combine(pg.user, pg.writable);
  if (!kAllowed[who(acc.user, write, m.wp)][prot]) {
    r.error_code = 1u | access_bits;
    return r;
  }
  ram[pg.pde_addr / 4] |= A;
  if (!pg.large) ram[pg.pte_addr / 4] |= A;
  if (write) ram[pg.final_addr / 4] |= D;
  r.ok = true;
  r.phys = pg.frame + (linear & 0xfff);
  r.page_base = pg.frame;
  r.large = pg.large;
  r.global = pg.global;
  r.user_ok = kAllowed[kUserRead][prot];
  r.user_write_ok = kAllowed[kUserWrite][prot];
  r.sup_write_ok = kAllowed[m.wp ? kSupWriteWp1 : kSupWriteWp0][prot];
  r.dirty = ram[pg.final_addr / 4] & D;
  r.pde_addr = pg.pde_addr;
  r.pte_addr = pg.pte_addr;
  return r;
}

void expect_same(const WalkResult& got, const WalkResult& want, const std::string& what) {
  ASSERT_EQ(got.ok, want.ok) << what;
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
  EXPECT_EQ(got.dirty, want.dirty) << what;
  EXPECT_EQ(got.pde_addr, want.pde_addr) << what;
  EXPECT_EQ(got.pte_addr, want.pte_addr) << what;
}

TEST(PageWalkerProperty, RandomTablesMatchReferenceWalker) {
  constexpr uint32_t kPages = 16;  // 64 KiB of guest RAM: every page may be a PD, PT or both
  std::mt19937 rng(0x5eedu);
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  // An entry-like word: mostly pointing into RAM, with P, R/W, U/S, PS, A, D, G, bit 7/12 and the
  // 4 MiB reserved bits each set often enough to matter.
  auto random_entry = [&]() {
    // One 32-bit draw decides the flags: byte 0 P (85%), byte 1 R/W (75%), byte 2 U/S (75%),
    // byte 3 PS (25%), whether the frame is in RAM (90%) and a clean 4 MiB frame (60%).
    const uint32_t f = static_cast<uint32_t>(rng()), r = static_cast<uint32_t>(rng());
    uint32_t v = r & (0x0e18u | A | D | G);  // ignored bits 11:9, PWT, PCD, A, D, G: 50% each
    v |= (f & 0xff) < 217 ? P : 0;
    v |= ((f >> 8) & 0xff) < 192 ? RW : 0;
    v |= ((f >> 16) & 0xff) < 192 ? US : 0;
    v |= ((f >> 24) & 3) == 0 ? PS : 0;
    if (((f >> 26) & 15) < 14) {
      v |= ((r >> 16) % kPages) << 12;  // a page of RAM (bits 15:13 are reserved in 4 MiB PDEs)
    } else {
      v |= static_cast<uint32_t>(rng()) & 0xfffff000u;  // anywhere, mostly outside RAM
    }
    if ((v & PS) && ((f >> 30) != 0)) v &= ~0x003ff000u;  // a clean 4 MiB frame (75%)
    return v;
  };

  FakeRam ram(kPages * 4096);
  int walks = 0, oks = 0, not_present = 0, reserved = 0, protection = 0, large = 0, writes = 0;
  for (int round = 0; round < 200; ++round) {
    for (uint32_t& w : ram.words) w = random_entry();
    std::vector<uint32_t> ref = ram.words;
    PagingMode mode;
    mode.cr3 = ((rng() % kPages) << 12) | (rng() & 0xfffu);  // low bits must be ignored
    uint32_t pool[8];
    for (uint32_t& l : pool) l = rng();
    for (int i = 0; i < 25; ++i) {
      mode.pse = chance(60);
      mode.wp = chance(50);
      mode.pge = chance(50);
      const uint32_t linear = chance(50) ? pool[rng() % 8] ^ (rng() & 0xfff) : rng();
      Access acc;
      acc.write = chance(40);
      acc.user = chance(50);
      acc.fetch = chance(15);
      const std::string what =
          "round " + std::to_string(round) + " walk " + std::to_string(i) +
          " linear=" + hex(linear) + " cr3=" + hex(mode.cr3) + " pse=" + std::to_string(mode.pse) +
          " wp=" + std::to_string(mode.wp) + " write=" + std::to_string(acc.write) +
          " user=" + std::to_string(acc.user) + " fetch=" + std::to_string(acc.fetch);
      // probe first: it reports the mapping and must not change memory.
      const int writes_before = ram.writes;
      const WalkResult pr = probe(ram, mode, linear);
      EXPECT_EQ(ram.writes, writes_before) << what;
      const WalkResult want_probe = ref_walk(ref, mode, linear, Access{});  // supervisor read
      ref = ram.words;  // undo the reference's A bit: probe sets none
      ASSERT_EQ(pr.ok, want_probe.ok) << what;
      if (pr.ok) {
        EXPECT_EQ(pr.phys, want_probe.phys) << what;
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
      ASSERT_EQ(ram.words, ref) << what << ": A/D state differs";
      ++walks;
      writes = ram.writes;
      if (got.ok) {
        ++oks;
        large += got.large;
      } else if (!(got.error_code & 1)) {
        ++not_present;
      } else if (got.error_code & 8) {
        ++reserved;
      } else {
        ++protection;
      }
    }
  }
  EXPECT_EQ(walks, 5000);
  // The random tables reach every outcome often enough to mean something.
  EXPECT_GT(oks, 1000);
  EXPECT_GT(large, 200);
  EXPECT_GT(not_present, 300);
  EXPECT_GT(reserved, 100);  // with PAT advertised, fewer bits are reserved (Tables 4-4, 4-6)
  EXPECT_GT(protection, 300);
  EXPECT_GT(writes, 300);
}

// ---------------------------------------------------------------------------------------------
// 3. Edge cases.
// ---------------------------------------------------------------------------------------------

constexpr Access kSupRd{}, kSupWr{.write = true}, kUsrRd{.user = true},
    kUsrWr{.write = true, .user = true};

TEST(PageWalkerEdge, Cr3LowBitsAreIgnored) {
  // Table 4-3: only bits 31:12 locate the page directory (PWT, PCD and the rest are ignored).
  for (uint32_t low : {0x000u, 0x008u, 0x010u, 0xfffu}) {
    FakeRam ram(0x8000);
    ram.at(kPdeAddr) = kPt | P | RW | US;
    ram.at(kPteAddr) = kFrame | P | RW | US;
    const WalkResult r = walk(ram, PagingMode{.cr3 = kPd | low}, kLinear, kUsrWr);
    ASSERT_TRUE(r.ok) << hex(low);
    EXPECT_EQ(r.phys, kFrame + 0x123);
    EXPECT_EQ(r.pde_addr, kPdeAddr);
  }
}

TEST(PageWalkerEdge, PageSizeBitIsIgnoredWithoutPse) {
  // Table 4-5: with CR4.PSE=0 bit 7 of a PDE is ignored, so the PDE references a page table
  // (bits 31:12), even with bits 21:12 set; and no bits are reserved (§4.3).
  FakeRam ram(0x8000);
  ram.at(kPdeAddr) = kPt | PS | P | RW;
  ram.at(kPteAddr) = kFrame | P | RW | (1u << 7);  // bit 7 (PAT) in the PTE: not reserved here
  WalkResult r = walk(ram, PagingMode{.cr3 = kPd, .pse = false}, kLinear, kSupWr);
  ASSERT_TRUE(r.ok);
  EXPECT_FALSE(r.large);
  EXPECT_EQ(r.phys, kFrame + 0x123);
  EXPECT_EQ(r.pte_addr, kPteAddr);
  EXPECT_EQ(ram.at(kPteAddr) & (A | D), A | D);
  EXPECT_EQ(ram.at(kPdeAddr) & D, 0u) << "D is not set in a PDE that references a page table";
  // A PDE with bits 21:12 set (reserved in a 4 MiB PDE): without PSE they are simply part of
  // the page-table address (0x3fe000 here), nothing faults.
  const uint32_t pde = 0x003fe000u | PS | P | RW;
  FakeRam ram2(0x400000);
  ram2.at(kPdeAddr) = pde;
  ram2.at((pde & 0xfffff000u) + 3 * 4) = kFrame | P;
  r = walk(ram2, PagingMode{.cr3 = kPd, .pse = false}, kLinear, kSupRd);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.pte_addr, (pde & 0xfffff000u) + 3 * 4);
  EXPECT_EQ(r.phys, kFrame + 0x123);
  // With PSE the same entry is a 4 MiB PDE with reserved bits set.
  r = walk(ram2, PagingMode{.cr3 = kPd, .pse = true}, kLinear, kSupRd);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, 0x9u);  // P | RSVD
}

TEST(PageWalkerEdge, ReservedBitsInFourMiBPde) {
  // §4.3: with CR4.PSE=1 and no PSE-36, bits 21:13 of a 4 MiB PDE are reserved; without PAT
  // (CPUID.1:EDX[16] = 0 in our CPU model) so is bit 12. §4.7: P=1 and RSVD=1 in the error code.
  const int lowest = kModelHasPat ? 13 : 12;
  for (int bit = 12; bit <= 21; ++bit) {
    for (const Access& acc : {kSupRd, kSupWr, kUsrRd, kUsrWr}) {
      FakeRam ram(0x8000);
      ram.at(kPdeAddr) = kLarge | (1u << bit) | PS | P | RW | US;
      const WalkResult r = walk(ram, PagingMode{.cr3 = kPd, .pse = true}, kLinear, acc);
      if (bit < lowest) {
        EXPECT_TRUE(r.ok) << bit;
        continue;
      }
      ASSERT_FALSE(r.ok) << bit;
      EXPECT_EQ(r.error_code, 0x9u | (acc.write ? 2u : 0u) | (acc.user ? 4u : 0u)) << bit;
      EXPECT_EQ(ram.writes, 0) << "no A bit on a faulting walk";
      const WalkResult pr = probe(ram, PagingMode{.cr3 = kPd, .pse = true}, kLinear);
      EXPECT_FALSE(pr.ok);
      EXPECT_EQ(pr.error_code, 0x9u);
    }
  }
  // A reserved-bit fault is reported even when the access rights would also deny the access:
  // user write to a supervisor read-only page -> P | W | U | RSVD.
  FakeRam ram(0x8000);
  ram.at(kPdeAddr) = kLarge | (1u << 17) | PS | P;
  const WalkResult r = walk(ram, PagingMode{.cr3 = kPd, .pse = true, .wp = true}, kLinear, kUsrWr);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, 0xfu);
  // Bits 31:22 and the low flags are not reserved.
  ram.at(kPdeAddr) = 0xffc00000u | 0xe00u | G | D | A | PS | 0x18u | US | RW | P;
  EXPECT_TRUE(walk(ram, PagingMode{.cr3 = kPd, .pse = true}, kLinear, kUsrWr).ok);
}

TEST(PageWalkerEdge, PatBitOfPteIsReservedWithPseWhenModelHasNoPat) {
  // §4.3 / Table 4-6: without PAT, bit 7 of a present PTE is reserved when CR4.PSE=1.
  FakeRam ram(0x8000);
  ram.at(kPdeAddr) = kPt | P | RW | US;
  ram.at(kPteAddr) = kFrame | (1u << 7) | P | RW | US;
  const WalkResult r = walk(ram, PagingMode{.cr3 = kPd, .pse = true}, kLinear, kUsrRd);
  if (kModelHasPat) {
    EXPECT_TRUE(r.ok);
  } else {
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error_code, 0xdu);  // P | U/S | RSVD
    EXPECT_EQ(ram.writes, 0) << "no A bit in the PDE either";
  }
  // Not present beats reserved: a PTE with P=0 has no reserved bits.
  ram.at(kPteAddr) = kFrame | (1u << 7) | RW | US;
  const WalkResult r2 = walk(ram, PagingMode{.cr3 = kPd, .pse = true}, kLinear, kUsrRd);
  EXPECT_FALSE(r2.ok);
  EXPECT_EQ(r2.error_code, 0x4u);
}

TEST(PageWalkerEdge, EntriesOutsideRamAreNotPresent) {
  FakeRam ram(0x8000);
  // The page directory itself lies outside RAM.
  WalkResult r = walk(ram, PagingMode{.cr3 = 0x10000000u}, kLinear, kUsrWr);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, 0x6u);  // P=0, W, U
  // The PDE points to a page table outside RAM.
  ram.at(kPdeAddr) = 0x7ffff000u | P | RW | US;
  r = walk(ram, PagingMode{.cr3 = kPd}, kLinear, kSupRd);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, 0x0u);
  r = walk(ram, PagingMode{.cr3 = kPd}, kLinear, kSupWr);
  EXPECT_EQ(r.error_code, 0x2u);
  EXPECT_EQ(ram.writes, 0);
  EXPECT_EQ(ram.at(kPdeAddr) & A, 0u) << "no A bit in the PDE when the PTE cannot be read";
  EXPECT_FALSE(probe(ram, PagingMode{.cr3 = kPd}, kLinear).ok);
  // A final frame outside RAM is fine: only the entries are read.
  ram.at(kPdeAddr) = kPt | P | RW | US;
  ram.at(kPteAddr) = 0xfee00000u | P | RW | US;
  r = walk(ram, PagingMode{.cr3 = kPd}, kLinear, kUsrRd);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, 0xfee00123u);
}

TEST(PageWalkerEdge, LinearAddressExtremes) {
  FakeRam ram(0x8000);
  // Linear 0: PDE 0 (at the PD base), PTE 0 (at the PT base).
  ram.at(kPd) = kPt | P | RW;
  ram.at(kPt) = 0x6000 | P | RW;
  // Linear 0xfffff000: PDE 1023 (PD base + 0xffc), PTE 1023 (PT base + 0xffc).
  ram.at(kPd + 0xffc) = 0x3000 | P | RW | US;
  ram.at(0x3000 + 0xffc) = 0x7000 | P | US;
  const PagingMode mode{.cr3 = kPd, .wp = true};
  WalkResult r = walk(ram, mode, 0, kSupWr);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, 0x6000u);
  EXPECT_EQ(r.pde_addr, kPd);
  EXPECT_EQ(r.pte_addr, kPt);
  r = walk(ram, mode, 0xfffff000u, kUsrRd);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, 0x7000u);
  EXPECT_EQ(r.pde_addr, kPd + 0xffcu);
  EXPECT_EQ(r.pte_addr, 0x3ffcu);
  r = walk(ram, mode, 0xffffffffu, kUsrRd);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, 0x7fffu);
  EXPECT_EQ(r.page_base, 0x7000u);
  r = walk(ram, mode, 0xffffffffu, kUsrWr);  // read-only PTE
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, 0x7u);
  r = walk(ram, mode, 0xffffffffu, kSupWr);  // CR0.WP=1: read-only for the supervisor too
  EXPECT_EQ(r.error_code, 0x3u);
  EXPECT_TRUE(walk(ram, PagingMode{.cr3 = kPd}, 0xffffffffu, kSupWr).ok);  // WP=0
  // A 4 MiB page at the top of the linear space.
  ram.at(kPd + 0xffc) = 0xffc00000u | PS | P | RW;
  r = walk(ram, PagingMode{.cr3 = kPd, .pse = true}, 0xffffffffu, kSupWr);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, 0xffffffffu);
  EXPECT_EQ(r.page_base, 0xfffff000u);
}

TEST(PageWalkerEdge, FourKiBFrameInsideFourMiBPage) {
  FakeRam ram(0x8000);
  // Linear 0x00c12345: PD index 3, offset 0x012345 into the 4 MiB page at 0x01000000.
  ram.at(kPd + 3 * 4) = 0x01000000u | PS | P | RW | US | G;
  const WalkResult r =
      walk(ram, PagingMode{.cr3 = kPd, .pse = true, .pge = true}, 0x00c12345u, kUsrWr);
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.large);
  EXPECT_EQ(r.phys, 0x01012345u);
  EXPECT_EQ(r.page_base, 0x01012000u);
  EXPECT_EQ(r.pde_addr, kPd + 12u);
  EXPECT_EQ(r.pte_addr, 0u);
  EXPECT_TRUE(r.global);
  EXPECT_TRUE(r.dirty);
  EXPECT_EQ(ram.at(kPd + 12) & (A | D), A | D);
  const WalkResult pr = probe(ram, PagingMode{.cr3 = kPd, .pse = true}, 0x00fff000u);
  ASSERT_TRUE(pr.ok);
  EXPECT_EQ(pr.page_base, 0x013ff000u);
  EXPECT_FALSE(pr.global) << "G is ignored when CR4.PGE=0";
}

TEST(PageWalkerEdge, AccessedAndDirtyAreStickyAndNotRewritten) {
  FakeRam ram(0x8000);
  ram.at(kPdeAddr) = kPt | P | RW | US;
  ram.at(kPteAddr) = kFrame | P | RW | US;
  const PagingMode mode{.cr3 = kPd};
  ASSERT_TRUE(walk(ram, mode, kLinear, kUsrRd).ok);
  EXPECT_EQ(ram.writes, 2);  // A in the PDE and in the PTE
  EXPECT_EQ(ram.at(kPteAddr) & D, 0u) << "a read does not set D";
  ASSERT_TRUE(walk(ram, mode, kLinear, kUsrRd).ok);
  EXPECT_EQ(ram.writes, 2) << "A already set: no write";
  WalkResult r = walk(ram, mode, kLinear, kUsrWr);
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.dirty);
  EXPECT_EQ(ram.writes, 3);  // D in the PTE only
  EXPECT_EQ(ram.at(kPdeAddr), kPt | P | RW | US | A) << "no D in a PDE referencing a page table";
  ASSERT_TRUE(walk(ram, mode, kLinear, kUsrWr).ok);
  EXPECT_EQ(ram.writes, 3);
  // A fetch is a read: no D even if Access::write is also set.
  ram.at(kPteAddr) = kFrame | P | US | A;
  r = walk(ram, PagingMode{.cr3 = kPd, .wp = true}, kLinear, Access{.write = true, .fetch = true});
  ASSERT_TRUE(r.ok);
  EXPECT_FALSE(r.dirty);
  EXPECT_EQ(ram.at(kPteAddr) & D, 0u);
}

TEST(PageWalkerEdge, NoAccessedBitOnAnyFault) {
  // Not-present PTE: the PDE was read but the translation failed, so it keeps A=0.
  FakeRam ram(0x8000);
  ram.at(kPdeAddr) = kPt | P | RW | US;
  ram.at(kPteAddr) = kFrame | RW | US;
  WalkResult r = walk(ram, PagingMode{.cr3 = kPd}, kLinear, kUsrRd);
  EXPECT_EQ(r.error_code, 0x4u);
  // Protection fault: user read of a supervisor page.
  ram.at(kPteAddr) = kFrame | P | RW;
  r = walk(ram, PagingMode{.cr3 = kPd}, kLinear, kUsrRd);
  EXPECT_EQ(r.error_code, 0x5u);
  EXPECT_EQ(ram.writes, 0);
  EXPECT_EQ(ram.at(kPdeAddr) & A, 0u);
  EXPECT_EQ(ram.at(kPteAddr) & A, 0u);
}

TEST(PageWalkerEdge, FetchesFollowReadRules) {
  // 32-bit paging has no NX: fetches need only what reads need, and I/D is never set (§4.7).
  FakeRam ram(0x8000);
  ram.at(kPdeAddr) = kPt | P | US;
  ram.at(kPteAddr) = kFrame | P | US;  // user, read-only
  const PagingMode mode{.cr3 = kPd, .wp = true};
  EXPECT_TRUE(walk(ram, mode, kLinear, Access{.fetch = true}).ok) << "supervisor fetch, no SMEP";
  EXPECT_TRUE(walk(ram, mode, kLinear, Access{.user = true, .fetch = true}).ok);
  ram.at(kPteAddr) = kFrame | P | RW;  // supervisor page
  const WalkResult r = walk(ram, mode, kLinear, Access{.user = true, .fetch = true});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error_code, 0x5u) << "P | U/S, I/D = 0";
}

TEST(PageWalkerEdge, GlobalBit) {
  // Table 4-6: G in the PTE counts with CR4.PGE=1; Table 4-5: bit 8 of a PDE that references a
  // page table is ignored.
  FakeRam ram(0x8000);
  ram.at(kPdeAddr) = kPt | P | RW | G;
  ram.at(kPteAddr) = kFrame | P | RW;
  EXPECT_FALSE(walk(ram, PagingMode{.cr3 = kPd, .pge = true}, kLinear, kSupRd).global);
  ram.at(kPteAddr) |= G;
  EXPECT_TRUE(walk(ram, PagingMode{.cr3 = kPd, .pge = true}, kLinear, kSupRd).global);
  EXPECT_FALSE(walk(ram, PagingMode{.cr3 = kPd, .pge = false}, kLinear, kSupRd).global);
}

TEST(PageWalkerEdge, PageDirectoryUsedAsItsOwnPageTable) {
  // A PDE that points to the page directory itself (the recursive mapping trick): for linear
  // addresses in that region the PD's entries are the PTEs. Walking the PDE's own slot uses the
  // same word as PDE and PTE; both A and D end up in it.
  FakeRam ram(0x8000);
  const uint32_t self = kPd | P | RW;
  ram.at(kPd + 0x300 * 4) = self;       // region 0x300 -> the PD
  const uint32_t linear = 0xc0300000u;  // PD index 0x300, PT index 0x300
  const WalkResult r = walk(ram, PagingMode{.cr3 = kPd}, linear, kSupWr);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.pde_addr, r.pte_addr);
  EXPECT_EQ(r.phys, kPd);
  EXPECT_EQ(ram.at(kPd + 0x300 * 4), self | A | D);
  EXPECT_TRUE(r.dirty);
}

TEST(PageWalkerEdge, ProbeReportsWithoutCheckingOrUpdating) {
  FakeRam ram(0x8000);
  ram.at(kPdeAddr) = kPt | P;
  ram.at(kPteAddr) = kFrame | P | D | G;  // supervisor, read-only, dirty
  const WalkResult r = probe(ram, PagingMode{.cr3 = kPd, .wp = true, .pge = true}, kLinear);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.phys, kFrame + 0x123);
  EXPECT_FALSE(r.user_ok);
  EXPECT_FALSE(r.user_write_ok);
  EXPECT_FALSE(r.sup_write_ok);
  EXPECT_TRUE(r.dirty);
  EXPECT_TRUE(r.global);
  EXPECT_EQ(ram.writes, 0);
  EXPECT_EQ(ram.at(kPdeAddr) & A, 0u);
  ram.at(kPdeAddr) = kPt;  // not present
  const WalkResult np = probe(ram, PagingMode{.cr3 = kPd}, kLinear);
  EXPECT_FALSE(np.ok);
  EXPECT_EQ(np.error_code, 0u);
}

}  // namespace
}  // namespace vmbt
