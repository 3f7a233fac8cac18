// The shadow MMU against the page walker: random page tables, random accesses through the host
// windows (as translated code makes them), random page-table updates written through the windows
// (as the guest makes them). Every access must end as the SDM's walk says: the same physical
// byte, or a #PF with the same error code; and no stale translation may survive a PTE write.
#include <gtest/gtest.h>
#include <setjmp.h>
#include <signal.h>

#include <cstring>
#include <random>
#include <set>

#include "shadow_mmu/page_walker.h"
#include "shadow_mmu/shadow_mmu.h"
#include "vmm/cpu_state.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/signal_stack.h"

namespace vmbt {
namespace {

constexpr uint32_t kRam = 16u << 20;
constexpr uint32_t kPd = 0x1000;
constexpr uint32_t kPtBase = 0x10000;   ///< page tables for PDE i at kPtBase + i * 4 KiB
constexpr uint32_t kFrames = 0x400000;  ///< data frames from 4 MiB up

sigjmp_buf g_jump;
const void* volatile g_fault_addr = nullptr;
volatile bool g_fault_write = false;

void on_segv(int, siginfo_t* info, void* ucv) {
  auto* uc = static_cast<ucontext_t*>(ucv);
  g_fault_addr = info->si_addr;
  g_fault_write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
  siglongjmp(g_jump, 1);
}

class RamPhys final : public PhysAccess {
 public:
  explicit RamPhys(GuestMemory& ram) : ram_(ram) {}
  bool read32(uint32_t pa, uint32_t* v) override { return ram_.read(pa, v, 4); }
  bool write32(uint32_t pa, uint32_t v) override { return ram_.write(pa, &v, 4); }

 private:
  GuestMemory& ram_;
};

struct Outcome {
  bool ok = false;
  uint32_t value = 0;
  uint32_t error_code = 0;
};

class ShadowMmuTest : public ::testing::Test {
 protected:
  ShadowMmuTest()
      : ram_(kRam),
        mmu_(
            ram_, [this](uint32_t page) { code_writes_.push_back(page); },
            [](uint32_t, uint32_t, uint32_t, bool) {}),
        phys_(ram_) {
    ensure_signal_alt_stack();
    struct sigaction sa {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv_);
    sigaction(SIGBUS, &sa, &old_bus_);
  }
  ~ShadowMmuTest() override {
    sigaction(SIGSEGV, &old_segv_, nullptr);
    sigaction(SIGBUS, &old_bus_, nullptr);
  }

  void set_paging(bool wp, bool pse, uint32_t cr3 = kPd) {
    state_.cr0 = cr0::kPe | cr0::kPg | (wp ? cr0::kWp : 0);
    state_.cr3 = cr3;
    state_.cr4 = pse ? cr4::kPse : 0;
    mmu_.set_mode(state_);
    mode_ = PagingMode{cr3, pse, wp, false};
  }

  /// PAE paging (Intel SDM Vol. 3A §4.4) with the PDPT at `cr3`: the PDPTE registers are loaded
  /// from RAM as MOV CR3 loads them (`load`), or kept as they were (a MOV CR3 never happened).
  void set_pae_paging(bool wp, bool nxe, uint32_t cr3, bool load = true) {
    state_.cr0 = cr0::kPe | cr0::kPg | (wp ? cr0::kWp : 0);
    state_.cr3 = cr3;
    state_.cr4 = cr4::kPae;
    state_.efer = nxe ? efer::kNxe : 0;
    if (load) {
      ASSERT_TRUE(mmu_.load_pdptes(cr3, &state_.pdpte));
    }
    mmu_.set_mode(state_);
    mode_ = PagingMode{};
    mode_.cr3 = cr3;
    mode_.wp = wp;
    mode_.pae = true;
    mode_.nxe = nxe;
    mode_.pdpte = state_.pdpte;
  }

  /// The monitor's fetch translation (the translator's code fetch) checked against the walker.
  void check_fetch(uint32_t linear, bool user) {
    const WalkResult want = probe(phys_, mode_, linear);
    const WalkResult walked_copy = want;
    uint64_t pa = 0;
    uint32_t error_code = 0;
    const bool allowed = want.ok && (!user || want.user_ok) && !want.nx;
    const bool got = mmu_.translate(linear, Access{false, user, true}, &pa, &error_code);
    ASSERT_EQ(got, allowed) << std::hex << "fetch at " << linear << " user " << user;
    if (allowed) {
      EXPECT_EQ(pa, walked_copy.phys) << std::hex << "fetch at " << linear;
    } else {
      const WalkResult fault = walk(phys_, mode_, linear, Access{false, user, true});
      EXPECT_EQ(error_code, fault.error_code) << std::hex << "fetch at " << linear;
    }
  }

  /// A page-table or page-directory store by the guest's kernel: through the supervisor window
  /// (a traced page faults) or as the monitor makes it for an adaptively translated writer.
  void table_store(uint32_t addr, uint32_t value, bool through_window) {
    if (through_window) {
      ASSERT_TRUE(access(addr, true, false, value).ok);
    } else {
      mmu_.begin_table_write(addr, 4);
      ram_.write32(addr, value);
      mmu_.end_table_write();
    }
    ASSERT_EQ(ram_.read32(addr), value);
  }

  /// One access checked against the walker's answer for the current tables (the oracle): a
  /// probe over a copy of them, since the walk sets A/D in RAM as the MMU's will; the real walk
  /// runs on RAM only after the MMU has done its access.
  void check_access(uint32_t linear, bool write, bool user, uint32_t value) {
    WalkResult want = probe(phys_, mode_, linear);
    bool allowed = want.ok && (user ? (write ? want.user_write_ok : want.user_ok)
                                    : (!write || want.sup_write_ok));
    uint32_t before = want.ok ? ram_.read32(want.phys) : 0;
    Outcome got = access(linear, write, user, value);
    ASSERT_EQ(got.ok, allowed) << std::hex << "linear " << linear << " write " << write << " user "
                               << user << " cr3 " << mode_.cr3;
    if (allowed) {
      if (write) {
        EXPECT_EQ(ram_.read32(want.phys), value);
      } else {
        EXPECT_EQ(got.value, before);
      }
    } else {
      WalkResult fault = walk(phys_, mode_, linear, Access{write, user, false});
      EXPECT_EQ(got.error_code, fault.error_code) << std::hex << "linear " << linear;
    }
  }

  /// A 32-bit access as translated code makes it: through the window of `cpl`'s view, letting
  /// the MMU resolve host faults until it either succeeds or reports a guest #PF.
  Outcome access(uint32_t linear, bool write, bool user, uint32_t value) {
    Outcome o;
    uint8_t* base = mmu_.window_base(user ? 3 : 0);
    for (int tries = 0; tries < 8; ++tries) {
      if (sigsetjmp(g_jump, 1) == 0) {
        volatile uint32_t* p = reinterpret_cast<volatile uint32_t*>(base + linear);
        if (write) {
          *p = value;
        } else {
          o.value = *p;
        }
        mmu_.resume_tracing();
        o.ok = true;
        return o;
      }
      ShadowMmu::Fault f =
          mmu_.handle_host_fault(const_cast<const void*>(g_fault_addr), g_fault_write);
      if (f.watched) ++watched_faults_;
      if (f.kind == ShadowMmu::Fault::kPageFault) {
        o.error_code = f.error_code;
        return o;
      }
      EXPECT_TRUE(f.kind == ShadowMmu::Fault::kRetry || f.kind == ShadowMmu::Fault::kSingleStep)
          << "fault kind " << f.kind << " at linear " << std::hex << linear;
    }
    ADD_FAILURE() << "access to " << std::hex << linear << " never completed";
    return o;
  }

  GuestMemory ram_;
  std::vector<uint32_t> code_writes_;  ///< pages the MMU reported written while holding code
  int watched_faults_ = 0;             ///< faults the MMU reported as a debugger's watch
  ShadowMmu mmu_;
  RamPhys phys_;
  VcpuState state_;
  PagingMode mode_;
  struct sigaction old_segv_ {
  }, old_bus_{};
};

TEST_F(ShadowMmuTest, UnpagedAccessesReachTheSamePhysicalBytes) {
  state_.cr0 = cr0::kPe;
  mmu_.set_mode(state_);
  ram_.write32(0x123458, 0xfeedf00d);
  Outcome o = access(0x123458, false, false, 0);
  ASSERT_TRUE(o.ok);
  EXPECT_EQ(o.value, 0xfeedf00du);
  ASSERT_TRUE(access(0x200000, true, true, 0x11223344).ok);
  EXPECT_EQ(ram_.read32(0x200000), 0x11223344u);
  // No RAM behind an address: reads return all ones and writes vanish, as on a PC bus where
  // nothing decodes the address.
  Outcome outside = access(kRam + 0x1000, false, false, 0);
  ASSERT_TRUE(outside.ok);
  EXPECT_EQ(outside.value, 0xffffffffu);
  ASSERT_TRUE(access(kRam + 0x1000, true, false, 0x12345678).ok);
  EXPECT_EQ(access(kRam + 0x1000, false, false, 0).value, 0xffffffffu);
}

TEST_F(ShadowMmuTest, RandomTablesAccessesAndPteWritesAgreeWithTheWalker) {
  std::mt19937 rng(12345);
  int pte_updates = 0;
  for (int round = 0; round < 6; ++round) {
    bool wp = round & 1, pse = round & 2;
    // Identity-map the first 4 MiB (tables, the PD) supervisor-only, so page-table writes can
    // go through the windows as a guest kernel's would.
    std::vector<uint8_t> zero(0x1000, 0);
    ram_.write(kPd, zero.data(), zero.size());
    for (uint32_t i = 0; i < 1024; ++i) ram_.write32(kPtBase + 4 * i, (i << 12) | 0x3);
    ram_.write32(kPd, kPtBase | 0x3);
    // PDEs 1..7: random tables (or 4 MiB pages with PSE) over random frames and rights.
    // A and D random too: a PTE installed present and accessed is mapped at once (prefetch),
    // which must still set D on the first write and never set A for the guest.
    auto random_pte = [&](uint32_t frame) {
      return frame | (rng() & 0x7) | (rng() % 4 == 0 ? 0 : 1) | (rng() % 2 ? pte::kAccessed : 0) |
             (rng() % 2 ? pte::kDirty : 0);
    };
    for (uint32_t pde = 1; pde < 8; ++pde) {
      uint32_t bits = (rng() & 0x6) | (rng() % 6 == 0 ? 0 : 1);
      if (pse && pde <= 3 && rng() % 3 == 0) {
        ram_.write32(kPd + 4 * pde, (pde << 22) | bits | pte::kPageSize);  // 4 MiB at 4*pde MiB
      } else {
        uint32_t pt = kPtBase + pde * 0x1000;
        ram_.write32(kPd + 4 * pde, pt | bits);
        for (uint32_t i = 0; i < 1024; ++i) {
          ram_.write32(pt + 4 * i, random_pte(kFrames + ((rng() % 2048) << 12)));
        }
      }
    }
    mmu_.flush_all();
    set_paging(wp, pse);
    for (int n = 0; n < 1500; ++n) {
      uint32_t linear = ((1 + rng() % 7) << 22) | ((rng() % 1024) << 12) | ((rng() % 1024) * 4);
      bool write = rng() % 2, user = rng() % 2;
      if (rng() % 97 == 0) {
        // CR0.WP toggled with shadows in place (no flush): supervisor writes to R/W=0 pages
        // must follow it both ways (Intel SDM Vol. 3A §4.6).
        wp = !wp;
        set_paging(wp, pse);
      }
      if (rng() % 10 == 0) {
        // A PTE update written by the "kernel" through the window (the identity map), right
        // after the page was used through the old PTE: the old translation must not survive.
        uint32_t pde_index = 1 + rng() % 7, pte_index = rng() % 1024;
        uint32_t pde = 0;
        phys_.read32(kPd + 4 * pde_index, &pde);
        if (!(pse && (pde & pte::kPageSize))) {
          uint32_t page = (pde_index << 22) | (pte_index << 12);
          access(page, false, false, 0);  // shadow the old translation, if there is one
          uint32_t pte_addr = kPtBase + pde_index * 0x1000 + 4 * pte_index;
          uint32_t new_pte = random_pte(kFrames + ((rng() % 2048) << 12));
          if (rng() % 2) {
            ASSERT_TRUE(access(pte_addr, true, false, new_pte).ok);  // traced: a host fault
          } else {  // the monitor's store (adaptive translation of a page-table writer)
            mmu_.begin_table_write(pte_addr, 4);
            ram_.write32(pte_addr, new_pte);
            mmu_.end_table_write();
          }
          uint32_t check = 0;
          phys_.read32(pte_addr, &check);
          ASSERT_EQ(check, new_pte);
          linear = page | ((rng() % 1024) * 4);  // and check the page again below
          ++pte_updates;
        } else {
          continue;
        }
      }
      check_access(linear, write, user, rng());
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_GT(pte_updates, 300);
}

TEST_F(ShadowMmuTest, PagesRevokedInPlaceComeBackOnlyWithTheirFrameAndRights) {
  // A page whose translation goes (P or A cleared, U/S changed) is revoked in place: its
  // windows keep the frame without access, and a later fill of the same frame only changes the
  // protection back. Eight pages over two frames each, rewritten at random (the same frame
  // again, the other frame, P, A, U/S and R/W toggled) and used from both views between
  // rewrites: every access must agree with the walker (a window giving back the old frame, or
  // user access after U/S went, would not).
  std::mt19937 rng(777);
  std::vector<uint8_t> zero(0x1000, 0);
  ram_.write(kPd, zero.data(), zero.size());
  for (uint32_t i = 0; i < 1024; ++i) ram_.write32(kPtBase + 4 * i, (i << 12) | 0x3);
  ram_.write32(kPd, kPtBase | 0x3);
  const uint32_t pt = kPtBase + 0x1000;
  ram_.write32(kPd + 4, pt | 0x7);
  auto frame_of = [](uint32_t page, uint32_t which) {
    return kFrames + ((page * 2 + which) << 12);
  };
  for (uint32_t page = 0; page < 16; ++page) {
    ram_.write32(frame_of(page, 0), 0xa0000000u | page);
    ram_.write32(frame_of(page, 1), 0xb0000000u | page);
  }
  for (uint32_t page = 0; page < 8; ++page) {
    ram_.write32(pt + 4 * page, frame_of(page, 0) | 0x67);  // P RW US A D
  }
  mmu_.flush_all();
  set_paging(true, false);
  int same_frame_refills = 0;
  for (int n = 0; n < 3000; ++n) {
    const uint32_t page = rng() % 8, linear = (1u << 22) | (page << 12) | ((rng() % 1024) * 4);
    if (rng() % 3 == 0) {
      const uint32_t pte_addr = pt + 4 * page;
      uint32_t old = 0;
      phys_.read32(pte_addr, &old);
      uint32_t pte = old;
      // P, A (cleared: the walk sets it again), U/S or R/W toggled, or the other frame.
      const uint32_t change = rng() % 5;
      constexpr uint32_t kToggles[4] = {0x1, 0, 0x4, 0x2};
      if (change == 1) {
        pte &= ~0x20u;
      } else if (change < 4) {
        pte ^= kToggles[change];
      } else {
        const bool on_first = (old & 0xfffff000u) == frame_of(page, 0);
        pte = frame_of(page, on_first ? 1 : 0) | (old & 0xfff) | 1;
      }
      if ((pte & 0xfffff000u) == (old & 0xfffff000u) && (pte & 1) && !(old & 1)) {
        ++same_frame_refills;
      }
      if (rng() % 2) {
        ASSERT_TRUE(access(pte_addr, true, false, pte).ok);
      } else {
        mmu_.begin_table_write(pte_addr, 4);
        ram_.write32(pte_addr, pte);
        mmu_.end_table_write();
      }
    }
    const bool write = rng() % 4 == 0, user = rng() % 2;
    // Writes store the frame's own tag back, so reads keep telling the two frames apart.
    WalkResult where = probe(phys_, mode_, linear);
    const uint32_t value = where.ok ? ram_.read32(where.phys) : 0;
    check_access(linear, write, user, value);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(same_frame_refills, 40);
}

TEST_F(ShadowMmuTest, DroppedRangesGiveTheirHostMappingsBack) {
  // Each page mapped on its own is a host mapping (VMA) and the host allows only so many
  // (vm.max_map_count), so the MMU resets spaces before the mappings they hold reach its budget.
  // A range that is dropped (its directory entry cleared: a process unmapping its memory) holds
  // none any more: a process touching the same 4 MiB again and again must never reach the
  // budget, while one touching ever more pages must, and keep running right across the resets.
  constexpr uint64_t kBudget = 2048;
  mmu_.set_host_map_budget(kBudget);
  std::vector<uint8_t> zero(0x1000, 0);
  ram_.write(kPd, zero.data(), zero.size());
  for (uint32_t i = 0; i < 1024; ++i) ram_.write32(kPtBase + 4 * i, (i << 12) | 0x3);
  ram_.write32(kPd, kPtBase | 0x3);
  // PDEs 1-3 share one page table: 1024 pages over 1024 frames, each tagged with its number.
  const uint32_t pt = kPtBase + 0x1000;
  for (uint32_t page = 0; page < 1024; ++page) {
    ram_.write32(kFrames + (page << 12), 0xc0de0000u | page);
    ram_.write32(pt + 4 * page, (kFrames + (page << 12)) | 0x63);  // P RW A D
  }
  mmu_.flush_all();
  set_paging(true, false);
  auto touch_range = [&](uint32_t pde) {
    for (uint32_t page = 0; page < 1024; ++page) {
      const Outcome o = access((pde << 22) | (page << 12), false, false, 0);
      ASSERT_TRUE(o.ok);
      ASSERT_EQ(o.value, 0xc0de0000u | page);
    }
  };
  for (int round = 0; round < 6; ++round) {  // 6,144 pages mapped, 1,024 at a time
    table_store(kPd + 4, pt | 0x3, false);
    touch_range(1);
    if (HasFatalFailure()) return;
    table_store(kPd + 4, 0, false);  // the range goes, and its host mappings with it
    EXPECT_FALSE(access(1u << 22, false, false, 0).ok);
  }
  EXPECT_EQ(mmu_.stats().mapping_limit_resets, 0u);
  for (uint32_t pde = 1; pde <= 3; ++pde) {  // 3,072 pages kept mapped: over the budget
    table_store(kPd + 4 * pde, pt | 0x3, false);
    touch_range(pde);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(mmu_.stats().mapping_limit_resets, 0u);
  touch_range(1);  // what a reset dropped faults back in
}

TEST_F(ShadowMmuTest, PrefetchedRunsAreMappedAtTheirFirstUseOrNever) {
  // A PTE store that installs a translation fills the page's shadow entry at once, but its host
  // mapping waits in a run of consecutive pages for a first use (most are never used: a kernel's
  // fault-around installs 16 pages of a file for one access). Ten runs of 8 pages installed,
  // one page used in five of them: five runs mapped, each whole, every value the walker's.
  std::vector<uint8_t> zero(0x1000, 0);
  ram_.write(kPd, zero.data(), zero.size());
  for (uint32_t i = 0; i < 1024; ++i) ram_.write32(kPtBase + 4 * i, (i << 12) | 0x3);
  ram_.write32(kPd, kPtBase | 0x3);
  const uint32_t pt = kPtBase + 0x1000;
  ram_.write(pt, zero.data(), zero.size());
  ram_.write32(kPd + 4, pt | 0x7);
  auto frame_of = [](uint32_t page) { return kFrames + (page << 12); };
  for (uint32_t page = 0; page < 1024; ++page) ram_.write32(frame_of(page), 0xf0000000u | page);
  ram_.write32(pt + 4 * 1023, frame_of(1023) | 0x67);
  mmu_.flush_all();
  set_paging(true, false);
  check_access((1u << 22) | (1023u << 12), false, true, 0);  // the table is traced from here on
  auto linear_of = [](uint32_t run, uint32_t i) { return (1u << 22) | ((run * 16 + i) << 12); };
  const uint64_t prefetched = mmu_.stats().prefetched;
  for (uint32_t run = 0; run < 10; ++run) {
    for (uint32_t i = 0; i < 8; ++i) {
      const uint32_t page = run * 16 + i;
      table_store(pt + 4 * page, frame_of(page) | 0x67, false);  // P RW US A D
    }
  }
  EXPECT_EQ(mmu_.stats().prefetched - prefetched, 80u);
  EXPECT_EQ(mmu_.stats().prefetch_runs_used, 0u);
  for (uint32_t run = 0; run < 5; ++run) check_access(linear_of(run, 3), false, true, 0);
  EXPECT_EQ(mmu_.stats().prefetch_runs_used, 5u);
  for (uint32_t run = 0; run < 5; ++run) {
    for (uint32_t i = 0; i < 8; ++i) check_access(linear_of(run, i), i % 2 == 0, true, 0x1000 + i);
  }
  EXPECT_EQ(mmu_.stats().prefetch_runs_used, 5u);  // each mapped whole at its first use
  // The other five: a supervisor access, a page cleared, a frame changed, before any use.
  check_access(linear_of(5, 2), true, false, 0x55);
  table_store(pt + 4 * (6 * 16 + 4), 0, false);
  table_store(pt + 4 * (7 * 16 + 1), frame_of(900) | 0x67, false);
  for (uint32_t run = 5; run < 10; ++run) {
    for (uint32_t i = 0; i < 8; ++i) check_access(linear_of(run, i), i % 3 == 0, i % 2 == 0, i);
  }
  if (HasFatalFailure()) return;

  // Then at random, with more runs than wait at once: installs (through the window or the
  // monitor's store), clears, other frames and rights, and accesses, all against the walker.
  std::mt19937 rng(4242);
  for (int n = 0; n < 4000; ++n) {
    const uint32_t op = rng() % 8;
    if (op == 0) {  // a run of up to 8 pages over consecutive frames
      const uint32_t first = rng() % 1000, count = 1 + rng() % 8, frames = rng() % 900;
      const uint32_t rights = 0x61 | (rng() % 2 ? 0x2 : 0) | (rng() % 2 ? 0x4 : 0);
      const bool through_window = rng() % 4 == 0;
      for (uint32_t i = 0; i < count && first + i < 1023; ++i) {
        table_store(pt + 4 * (first + i), frame_of(frames + i) | rights, through_window);
      }
    } else if (op == 1) {  // cleared, or another frame
      const uint32_t page = rng() % 1023;
      table_store(pt + 4 * page, rng() % 2 ? 0 : frame_of(rng() % 1024) | 0x67, rng() % 2);
    } else {
      const uint32_t linear = (1u << 22) | ((rng() % 1024) << 12) | ((rng() % 1024) * 4);
      const bool write = rng() % 4 == 0, user = rng() % 2;
      const WalkResult where = probe(phys_, mode_, linear);
      check_access(linear, write, user, where.ok ? ram_.read32(where.phys) : 0);
    }
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(mmu_.stats().prefetch_runs_used, 5u);
  EXPECT_GT(mmu_.stats().prefetch_runs_forgotten, 0u);
}

TEST_F(ShadowMmuTest, ManyAddressSpacesAndDirectoryWritesAgreeWithTheWalker) {
  // More page directories than the MMU keeps spaces (so spaces are recycled for new ones), all
  // sharing most entries as a kernel's half is shared, with directory entries rewritten while
  // their directory is current and while it is not (the shadows of a space that is not current
  // are compared with its directory when it is current again), and page-table entries
  // rewritten under all of them.
  constexpr uint32_t kDirs = 12, kDirBase = 0x20000, kAltPtBase = 0x30000;
  std::mt19937 rng(777);
  std::set<uint32_t> code_pages;  ///< protected as translated code, not written since
  for (int round = 0; round < 4; ++round) {
    const bool wp = round & 1, pse = round & 2;
    auto random_pte = [&] {
      return (kFrames + ((rng() % 2048) << 12)) | (rng() & 0x7) | (rng() % 4 == 0 ? 0 : 1) |
             (rng() % 2 ? pte::kAccessed : 0) | (rng() % 2 ? pte::kDirty : 0);
    };
    auto random_pde = [&](uint32_t index) -> uint32_t {  // for entry `index` (1..7)
      const uint32_t bits = (rng() & 0x6) | 1;
      switch (rng() % 6) {
        case 0:
          return 0;  // not present
        case 1:
          if (pse) return ((1 + rng() % 3) << 22) | bits | pte::kPageSize;  // inside RAM
          [[fallthrough]];
        case 2:
          return (kAltPtBase + index * 0x1000) | bits;
        default:
          return (kPtBase + index * 0x1000) | 0x7;  // the shared ("kernel") table
      }
    };
    for (uint32_t i = 0; i < 1024; ++i) ram_.write32(kPtBase + 4 * i, (i << 12) | 0x3);
    for (uint32_t t = 1; t < 8; ++t) {
      for (uint32_t i = 0; i < 1024; ++i) {
        ram_.write32(kPtBase + t * 0x1000 + 4 * i, random_pte());
        ram_.write32(kAltPtBase + t * 0x1000 + 4 * i, random_pte());
      }
    }
    for (uint32_t d = 0; d < kDirs; ++d) {
      const uint32_t pd = kDirBase + d * 0x1000;
      for (uint32_t i = 0; i < 1024; ++i) ram_.write32(pd + 4 * i, 0);
      ram_.write32(pd, kPtBase | 0x3);  // the first 4 MiB: identity, supervisor only
      for (uint32_t i = 1; i < 8; ++i) ram_.write32(pd + 4 * i, (kPtBase + i * 0x1000) | 0x7);
    }
    mmu_.flush_all();
    set_paging(wp, pse, kDirBase);
    int switches = 0, directory_writes = 0, other_directory_writes = 0, code_writes_seen = 0;
    // A write checked against the walker, and reported if it is the first to a page holding
    // translated code (the MMU then lets the page go: later writes are not reported).
    auto check_write = [&](uint32_t linear, bool user) {
      const WalkResult w = probe(phys_, mode_, linear);
      const bool allowed = w.ok && (user ? w.user_write_ok : w.sup_write_ok);
      code_writes_.clear();
      check_access(linear, true, user, rng());
      if (allowed && code_pages.erase(w.phys >> 12)) {
        EXPECT_EQ(code_writes_, std::vector<uint32_t>{static_cast<uint32_t>(w.phys >> 12)})
            << std::hex << "a write to a page with translated code at " << linear;
        ++code_writes_seen;
      } else {
        EXPECT_TRUE(code_writes_.empty()) << std::hex << "a write at " << linear;
      }
    };
    for (int n = 0; n < 3000; ++n) {
      const unsigned op = rng() % 100;
      if (op < 6) {
        set_paging(wp, pse, kDirBase + (rng() % kDirs) * 0x1000);
        ++switches;
      } else if (op < 12) {
        const uint32_t pd = kDirBase + (rng() % kDirs) * 0x1000, index = 1 + rng() % 7;
        // Use the range first, so there is a shadow to get rid of if this is the current one.
        check_access((index << 22) | ((rng() % 1024) << 12), false, false, 0);
        table_store(pd + 4 * index, random_pde(index), rng() % 2);
        ++(pd == mode_.cr3 ? directory_writes : other_directory_writes);
      } else if (op < 21) {
        // Translated code on a page of the current space, then a write to it from another
        // space (which may map it writable from before): the first write must be reported.
        const uint32_t linear = ((1 + rng() % 7) << 22) | ((rng() % 1024) << 12);
        const WalkResult w = probe(phys_, mode_, linear);
        if (w.ok) {
          mmu_.protect_code(w.phys >> 12);
          code_pages.insert(w.phys >> 12);
        }
        set_paging(wp, pse, kDirBase + (rng() % kDirs) * 0x1000);
        check_write(linear | ((rng() % 1024) * 4), rng() % 2);
      } else if (op < 27) {
        const uint32_t index = 1 + rng() % 7;
        const uint32_t table = (rng() % 2 ? kPtBase : kAltPtBase) + index * 0x1000;
        table_store(table + 4 * (rng() % 1024), random_pte(), rng() % 2);
      } else {
        const uint32_t linear =
            ((1 + rng() % 7) << 22) | ((rng() % 1024) << 12) | ((rng() % 1024) * 4);
        if (rng() % 2) {
          check_write(linear, rng() % 2);
        } else {
          check_access(linear, false, rng() % 2, 0);
        }
      }
      if (HasFatalFailure()) return;
    }
    EXPECT_GT(switches, 100);
    EXPECT_GT(directory_writes, 5);
    EXPECT_GT(other_directory_writes, 100);
    EXPECT_GT(code_writes_seen, 10);
  }
  EXPECT_GT(mmu_.stats().spaces_recycled, 50u);
  EXPECT_GT(mmu_.stats().ranges_kept, 50u);
}

TEST_F(ShadowMmuTest, AnAddressSpaceThatIsGoneIsNotWalkedThroughItsOldDirectory) {
  // Address spaces A and B share a kernel page table (Linux copies its kernel entries into every
  // page directory); A alone uses another (a table private to it). Both derive shadows from them.
  // Then B is current, A's process is gone, and its directory page is a page table now, mapping
  // a shared library's page-cache frame, whose words have bit 0 set (here every one). When B's
  // kernel takes write access away from the shared PTE (set_memory_ro: a downgrade kept in every
  // space) or installs a PTE in A's private table (prefetched into the only space using it), the
  // MMU must not walk A's old directory: such a walk took the library page for a page table and
  // set bit 5 (Accessed) of one of its words (Debian's libkmod and ld.so, in the page cache).
  constexpr uint32_t kPdA = 0x2000, kPdB = 0x3000, kSharedPt = 0x20000, kPrivatePt = 0x21000;
  constexpr uint32_t kLibrary = 0x22000;
  constexpr uint32_t kShared = 990, kPrivate = 226;
  constexpr uint32_t kSharedLinear = (kShared << 22) | 0x5000;
  constexpr uint32_t kPrivateLinear = (kPrivate << 22) | 0x6000;
  constexpr uint32_t kFrame = kFrames + 0x7000, kNewFrame = kFrames + 0x8000;
  ram_.write32(kPdA + kShared * 4, kSharedPt | 0x27);  // P, R/W, U/S, A
  ram_.write32(kPdB + kShared * 4, kSharedPt | 0x27);
  ram_.write32(kPdA + kPrivate * 4, kPrivatePt | 0x27);
  ram_.write32(kSharedPt + 5 * 4, kFrame | 0x63);  // P, R/W, A, D (supervisor)
  ram_.write32(kPrivatePt + 6 * 4, kFrame | 0x63);
  set_paging(true, false, kPdA);
  ASSERT_TRUE(access(kSharedLinear, false, false, 0).ok);
  ASSERT_TRUE(access(kPrivateLinear, false, false, 0).ok);
  set_paging(true, false, kPdB);
  ASSERT_TRUE(access(kSharedLinear, false, false, 0).ok);
  // The library's page, and A's old directory reused as a page table mapping it everywhere
  // (written as a device's DMA and a kernel's stores the MMU no longer traces would be).
  std::vector<uint32_t> library(1024), table(1024, kLibrary | 0x25);       // P, U/S, A
  for (uint32_t i = 0; i < 1024; ++i) library[i] = 0x7066765f + (i << 8);  // bit 0 set, 5 clear
  ASSERT_TRUE(ram_.write(kLibrary, library.data(), 4096));
  mmu_.note_phys_write(kLibrary, 4096);
  ASSERT_TRUE(ram_.write(kPdA, table.data(), 4096));
  mmu_.note_phys_write(kPdA, 4096);
  table_store(kSharedPt + 5 * 4, kFrame | 0x61, false);      // R/W cleared: a downgrade
  table_store(kPrivatePt + 7 * 4, kNewFrame | 0x23, false);  // a new present, accessed PTE
  for (uint32_t i = 0; i < 1024; ++i) {
    ASSERT_EQ(ram_.read32(kLibrary + i * 4), library[i]) << "word " << i << " of the library";
    ASSERT_EQ(ram_.read32(kPdA + i * 4), table[i]) << "word " << i << " of A's old directory";
  }
  // B's translation has the new rights: readable, a supervisor write faults (CR0.WP=1).
  check_access(kSharedLinear, false, false, 0);
  check_access(kSharedLinear, true, false, 0x1234);
}

TEST_F(ShadowMmuTest, WatchedFramesFaultAsTheirKindSays) {
  // A debugger's watchpoints (set_watched_pages): stores into a write-watched frame, and every
  // access to an access-watched one, fault with `watched` through every linear page that maps
  // the frame, each time (the watch is re-armed after the access); other frames never do, and
  // the data is what RAM holds either way.
  std::vector<uint8_t> zero(0x1000, 0);
  ram_.write(kPd, zero.data(), zero.size());
  const uint32_t pt = kPtBase;
  ram_.write(pt, zero.data(), zero.size());
  ram_.write32(kPd, pt | 0x7);
  const uint32_t write_frame = kFrames, access_frame = kFrames + 0x1000, plain = kFrames + 0x2000;
  ram_.write32(pt + 4 * 1, write_frame | 0x67);   // linear 0x1000
  ram_.write32(pt + 4 * 2, access_frame | 0x67);  // linear 0x2000
  ram_.write32(pt + 4 * 3, plain | 0x67);         // linear 0x3000
  ram_.write32(pt + 4 * 4, write_frame | 0x67);   // linear 0x4000: the same frame again
  ram_.write32(write_frame + 8, 0x11111111);
  ram_.write32(access_frame + 8, 0x22222222);
  set_paging(true, false);
  for (uint32_t linear : {0x1000u, 0x2000u, 0x3000u, 0x4000u}) {  // mapped before the watch
    ASSERT_TRUE(access(linear + 8, false, false, 0).ok);
  }
  mmu_.set_watched_pages({write_frame >> 12}, {access_frame >> 12});
  auto watched = [&](uint32_t linear, bool write, uint32_t value) {
    const int before = watched_faults_;
    Outcome o = access(linear, write, false, value);
    EXPECT_TRUE(o.ok) << std::hex << linear;
    return std::pair(watched_faults_ - before, o.value);
  };
  EXPECT_EQ(watched(0x1008, false, 0), std::pair(0, 0x11111111u));  // reads of a write watch
  EXPECT_EQ(watched(0x1008, true, 0x33333333).first, 1);
  EXPECT_EQ(ram_.read32(write_frame + 8), 0x33333333u);
  EXPECT_EQ(watched(0x4008, true, 0x44444444).first, 1);  // through the other linear page
  EXPECT_EQ(watched(0x1008, true, 0x55555555).first, 1);  // re-armed
  EXPECT_EQ(watched(0x2008, false, 0), std::pair(1, 0x22222222u));
  EXPECT_EQ(watched(0x2008, false, 0), std::pair(1, 0x22222222u));
  EXPECT_EQ(watched(0x2008, true, 0x66666666).first, 1);
  EXPECT_EQ(ram_.read32(access_frame + 8), 0x66666666u);
  EXPECT_EQ(watched(0x3008, true, 0x77777777).first, 0);
  EXPECT_EQ(watched(0x3008, false, 0).first, 0);
  mmu_.set_watched_pages({}, {});
  EXPECT_EQ(watched(0x1008, true, 0x88888888).first, 0);
  EXPECT_EQ(watched(0x2008, false, 0), std::pair(0, 0x66666666u));
}

TEST_F(ShadowMmuTest, PaeTablesAccessesFetchesAndSplitPteWritesAgreeWithTheWalker) {
  // PAE paging (Intel SDM Vol. 3A §4.4): a PDPT with two directories, 4 KiB and 2 MiB pages,
  // random rights, XD and A/D bits, sometimes a reserved bit (40, or 63 without NXE); PTEs
  // rewritten as Linux does for PAE, high dword then low dword, each a separate 32-bit store
  // (through the window, a tracing fault, or the monitor's store of an adaptively translated
  // writer), and now and then by one 8-byte store. Every access and every fetch translation must
  // be what the walker says: the same bytes, or the same #PF error code (I/D for fetches with
  // NXE); no translation derived from an entry may survive its change (XD included).
  constexpr uint32_t kPdpt = 0x1000, kPd0 = 0x2000, kPd1 = 0x3000, kPaePt = 0x20000;
  std::mt19937 rng(2024);
  int pte_updates = 0, fetch_faults = 0, fetch_ok = 0;
  auto random_pte = [&](uint64_t frame) {
    uint64_t e = frame | (rng() & 0x6) | (rng() % 4 == 0 ? 0 : 1) |
                 (rng() % 2 ? pte::kAccessed : 0) | (rng() % 2 ? pte::kDirty : 0);
    if (rng() % 3 == 0) e |= pae::kXd;
    if (rng() % 16 == 0) e |= uint64_t{1} << 40;  // reserved (MAXPHYADDR 36)
    return e;
  };
  auto write64 = [&](uint32_t addr, uint64_t v) {
    ram_.write32(addr, static_cast<uint32_t>(v));
    ram_.write32(addr + 4, static_cast<uint32_t>(v >> 32));
  };
  for (int round = 0; round < 4; ++round) {
    const bool wp = round & 1, nxe = round & 2;
    std::vector<uint8_t> zero(0x1000, 0);
    for (uint32_t page : {kPdpt, kPd0, kPd1}) ram_.write(page, zero.data(), zero.size());
    write64(kPdpt, kPd0 | 1);
    write64(kPdpt + 8, kPd1 | 1);
    // The first 2 MiB identity-mapped (supervisor) through a page table, for the kernel's stores.
    write64(kPd0, kPtBase | 0x3);
    for (uint32_t i = 0; i < 512; ++i) write64(kPtBase + 8 * i, (uint64_t{i} << 12) | 0x3);
    // PD1 entries 0-7 (linear 1 GiB + 2 MiB * i): page tables or 2 MiB pages (XD random).
    for (uint32_t i = 0; i < 8; ++i) {
      uint64_t bits = (rng() & 0x6) | (rng() % 6 == 0 ? 0 : 1) | (rng() % 4 == 0 ? pae::kXd : 0);
      if (rng() % 3 == 0) {
        write64(kPd1 + 8 * i, (uint64_t{2 + i % 2} << 21) | bits | pte::kPageSize);  // 4/6 MiB
      } else {
        const uint32_t pt = kPaePt + i * 0x1000;
        write64(kPd1 + 8 * i, pt | bits);
        for (uint32_t j = 0; j < 512; ++j) {
          write64(pt + 8 * j, random_pte(kFrames + ((rng() % 2048) << 12)));
        }
      }
    }
    mmu_.flush_all();
    set_pae_paging(wp, nxe, kPdpt);
    if (HasFatalFailure()) return;
    for (int n = 0; n < 2000; ++n) {
      const uint32_t pde = rng() % 8;
      uint32_t linear = 0x40000000u | (pde << 21) | ((rng() % 512) << 12) | ((rng() % 1024) * 4);
      const bool write = rng() % 2, user = rng() % 2;
      uint64_t pde_value = 0;
      phys_.read64(kPd1 + 8 * pde, &pde_value);
      if (rng() % 8 == 0 && !(pde_value & pte::kPageSize)) {
        const uint32_t index = rng() % 512;
        const uint32_t page = 0x40000000u | (pde << 21) | (index << 12);
        access(page, false, false, 0);  // shadow the old translation, if there is one
        check_fetch(page, user);
        const uint32_t pte_addr = kPaePt + pde * 0x1000 + 8 * index;
        const uint64_t old = [&] {
          uint64_t v = 0;
          phys_.read64(pte_addr, &v);
          return v;
        }();
        // Often the same frame with XD, R/W or U/S toggled; else a new entry.
        uint64_t now = rng() % 2 ? random_pte(kFrames + ((rng() % 2048) << 12))
                                 : old ^ (rng() % 3 == 0 ? pae::kXd : uint64_t{rng() & 0x6});
        const unsigned how = rng() % 3;
        if (how == 2) {  // one 8-byte store (set_pte_atomic's CMPXCHG8B) by the monitor
          mmu_.begin_table_write(pte_addr, 8);
          write64(pte_addr, now);
          mmu_.end_table_write();
        } else {
          for (uint32_t half : {4u, 0u}) {  // high dword, then low dword
            const uint32_t v = static_cast<uint32_t>(now >> (half * 8));
            if (how == 0) {
              ASSERT_TRUE(access(pte_addr + half, true, false, v).ok);  // through the window
            } else {
              mmu_.begin_table_write(pte_addr + half, 4);
              ram_.write32(pte_addr + half, v);
              mmu_.end_table_write();
            }
          }
        }
        uint64_t check = 0;
        phys_.read64(pte_addr, &check);
        ASSERT_EQ(check, now);
        linear = page | ((rng() % 1024) * 4);
        check_fetch(linear, user);
        if (HasFatalFailure()) return;
        ++pte_updates;
      }
      if (rng() % 4 == 0) {
        uint64_t pa = 0;
        uint32_t error_code = 0;
        const bool ok = mmu_.translate(linear, Access{false, user, true}, &pa, &error_code);
        ++(ok ? fetch_ok : fetch_faults);
        check_fetch(linear, user);
      }
      check_access(linear, write, user, rng());
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_GT(pte_updates, 600);
  EXPECT_GT(fetch_faults, 100);
  EXPECT_GT(fetch_ok, 100);
}

TEST_F(ShadowMmuTest, PaeDirectoryPointersAreRegistersLoadedAtMovCr3) {
  // The PDPTEs are loaded at MOV CR3 (Intel SDM Vol. 3A §4.4.1), not read by each walk: a PDPT
  // rewritten in memory changes nothing until they are loaded again, even across space
  // switches that find the same space; two PDPTs in one page are two address spaces; a 32-bit
  // directory and a PDPT at the same address (paging off in between) never share shadows.
  constexpr uint32_t kPdpt = 0x1000, kPdA = 0x2000, kPdB = 0x3000, kPtA = 0x20000;
  constexpr uint32_t kPtB = 0x21000, kFrameA = kFrames, kFrameB = kFrames + 0x1000;
  auto write64 = [&](uint32_t addr, uint64_t v) {
    ram_.write32(addr, static_cast<uint32_t>(v));
    ram_.write32(addr + 4, static_cast<uint32_t>(v >> 32));
  };
  ram_.write32(kFrameA, 0xaaaa0001);
  ram_.write32(kFrameB, 0xbbbb0002);
  write64(kPdA, kPtA | 0x7);
  write64(kPtA, kFrameA | 0x7);
  write64(kPdB, kPtB | 0x7);
  write64(kPtB, kFrameB | 0x7);
  write64(kPdpt, kPdA | 1);         // the first PDPT: 0 -> A
  write64(kPdpt + 0x20, kPdB | 1);  // the second, in the same page: 0 -> B
  set_pae_paging(true, false, kPdpt);
  EXPECT_EQ(access(0, false, false, 0).value, 0xaaaa0001u);
  // The PDPT rewritten (a plain store: the PDPT is no paging structure the MMU traces).
  write64(kPdpt, kPdB | 1);
  set_pae_paging(true, false, kPdpt, /*load=*/false);  // e.g. a CR4.PGE toggle: no load event
  EXPECT_EQ(access(0, false, false, 0).value, 0xaaaa0001u) << "the PDPTE register changed";
  set_pae_paging(true, false, kPdpt);  // MOV CR3
  EXPECT_EQ(access(0, false, false, 0).value, 0xbbbb0002u) << "MOV CR3 did not reload";
  write64(kPdpt, kPdA | 1);
  set_pae_paging(true, false, kPdpt);
  EXPECT_EQ(access(0, false, false, 0).value, 0xaaaa0001u);
  set_pae_paging(true, false, kPdpt + 0x20);
  EXPECT_EQ(access(0, false, false, 0).value, 0xbbbb0002u) << "the second PDPT of the page";
  set_pae_paging(true, false, kPdpt);
  EXPECT_EQ(access(0, false, false, 0).value, 0xaaaa0001u) << "the first PDPT again";
  // A present PDPTE with a reserved bit is refused (the #GP) and the registers stay.
  std::array<uint64_t, 4> regs = state_.pdpte;
  write64(kPdpt + 0x28, kPdB | 1 | 0x2);
  EXPECT_FALSE(mmu_.load_pdptes(kPdpt + 0x20, &regs));
  EXPECT_EQ(regs, state_.pdpte);
  // Paging off, the page at kPdpt becomes a 32-bit page directory, 32-bit paging on with the
  // same CR3: the walk is the 32-bit one (PDE 0 -> kPtB's first entry, read as 4 bytes).
  state_.cr0 = cr0::kPe;
  state_.cr4 = cr4::kPae;
  mmu_.set_mode(state_);
  std::vector<uint8_t> zero(0x1000, 0);
  ram_.write(kPdpt, zero.data(), zero.size());
  mmu_.note_phys_write(kPdpt, 0x1000);
  ram_.write32(kPdpt, kPtB | 0x7);
  mmu_.note_phys_write(kPdpt, 4);
  set_paging(true, false, kPdpt);
  EXPECT_EQ(access(0, false, false, 0).value, 0xbbbb0002u) << "32-bit paging after PAE";
  check_access(0x1000, false, false, 0);  // PTE 1 of kPtB is kFrameB's high dword: 0, absent
}

TEST_F(ShadowMmuTest, PaeExecuteDisableFollowsNxeAndXdChanges) {
  // XD (Intel SDM Vol. 3A §4.6.1): with IA32_EFER.NXE=1 a fetch from a page with XD in the PTE
  // or the PDE faults with P=1 I/D=1, though data accesses work and the page is shadowed; with
  // NXE=0 the same entry has a reserved bit (P=1 RSVD=1). Setting XD in a PTE whose page was
  // fetched from before must take effect at once (the shadows are coherent, change_matters).
  constexpr uint32_t kPdpt = 0x1000, kPd = 0x2000, kPt = 0x20000, kFrame = kFrames;
  auto write64 = [&](uint32_t addr, uint64_t v) {
    ram_.write32(addr, static_cast<uint32_t>(v));
    ram_.write32(addr + 4, static_cast<uint32_t>(v >> 32));
  };
  write64(kPdpt, kPd | 1);
  write64(kPd, kPt | 0x7);
  write64(kPt, kFrame | 0x27);  // P R/W U/S A
  set_pae_paging(true, true, kPdpt);
  uint64_t pa = 0;
  uint32_t error_code = 0;
  ASSERT_TRUE(mmu_.translate(0x10, Access{false, false, true}, &pa, &error_code));
  EXPECT_EQ(pa, kFrame + 0x10);
  ASSERT_TRUE(access(0x10, false, false, 0).ok);  // shadowed now
  mmu_.begin_table_write(kPt + 4, 4);
  ram_.write32(kPt + 4, 0x80000000u);  // XD
  mmu_.end_table_write();
  EXPECT_FALSE(mmu_.translate(0x10, Access{false, false, true}, &pa, &error_code));
  EXPECT_EQ(error_code, pfec::kPresent | pfec::kFetch);
  EXPECT_TRUE(access(0x10, false, false, 0).ok) << "data reads of an XD page";
  EXPECT_FALSE(mmu_.translate(0x10, Access{false, true, true}, &pa, &error_code));
  EXPECT_EQ(error_code, pfec::kPresent | pfec::kFetch | pfec::kUser);
  // NXE off: bit 63 is reserved; every access faults with RSVD (and no I/D).
  set_pae_paging(true, false, kPdpt);
  EXPECT_EQ(access(0x10, false, false, 0).error_code, pfec::kPresent | pfec::kRsvd);
  EXPECT_FALSE(mmu_.translate(0x10, Access{false, false, true}, &pa, &error_code));
  EXPECT_EQ(error_code, pfec::kPresent | pfec::kRsvd);
  // NXE on, XD moved from the PTE to the PDE (written through the window, as a kernel would).
  set_pae_paging(true, true, kPdpt);
  ram_.write32(kPt + 4, 0);
  mmu_.note_phys_write(kPt + 4, 4);
  ASSERT_TRUE(mmu_.translate(0x10, Access{false, false, true}, &pa, &error_code));
  ram_.write32(kPd + 4, 0x80000000u);
  mmu_.note_phys_write(kPd + 4, 4);
  EXPECT_FALSE(mmu_.translate(0x10, Access{false, false, true}, &pa, &error_code));
  EXPECT_EQ(error_code, pfec::kPresent | pfec::kFetch);
  // A not-present page: I/D alone.
  EXPECT_FALSE(mmu_.translate(0x5000, Access{false, false, true}, &pa, &error_code));
  EXPECT_EQ(error_code, pfec::kFetch);
}

}  // namespace
}  // namespace vmbt
