// The system emulator's fast paths for event delivery and IRET (SystemEmulator::fast_deliver,
// fast_iret) against its general path, which the other system tests check against the SDM: for
// thousands of generated situations (gate types, DPLs, present bits, accessed bits, stacks near
// their limits or not mapped, CPL 0 and 3, every kind of event, IRET frames to the same or an
// outer level with good and bad selectors), the state, memory and result with the fast paths on
// must be exactly those with them off (the oracle).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "bt/system/decoded_insn.h"
#include "tests/unit/system_guest_image.h"

namespace vmbt::bt::testing {
namespace {

using FastPathTest = SystemEmulatorTest;

struct Outcome {
  StepKind kind;
  VcpuState state;
  std::vector<uint8_t> memory;
};

bool same_segment(const SegmentReg& a, const SegmentReg& b) {
  return a.selector == b.selector && a.base == b.base && a.limit == b.limit && a.type == b.type &&
         a.dpl == b.dpl && a.s == b.s && a.present == b.present && a.db == b.db && a.g == b.g &&
         a.avl == b.avl && a.unusable == b.unusable;
}

/// The first register (field by field: padding bytes are no state) where `a` and `b` differ, or
/// an empty string.
std::string register_difference(const VcpuRegisters& a, const VcpuRegisters& b) {
  for (unsigned i = 0; i < 8; ++i) {
    if (a.gpr[i] != b.gpr[i]) return "gpr " + std::to_string(i);
  }
  if (a.eip != b.eip) return "eip";
  if (a.eflags != b.eflags) return "eflags";
  for (unsigned i = 0; i < 6; ++i) {
    if (!same_segment(a.seg[i], b.seg[i])) return "segment " + std::to_string(i);
  }
  if (!same_segment(a.ldtr, b.ldtr)) return "ldtr";
  if (!same_segment(a.tr, b.tr)) return "tr";
  if (a.gdtr.base != b.gdtr.base || a.gdtr.limit != b.gdtr.limit) return "gdtr";
  if (a.idtr.base != b.idtr.base || a.idtr.limit != b.idtr.limit) return "idtr";
  if (a.cr0 != b.cr0 || a.cr2 != b.cr2 || a.cr3 != b.cr3 || a.cr4 != b.cr4) return "cr";
  if (a.efer != b.efer || a.dr != b.dr || a.tsc != b.tsc) return "efer/dr/tsc";
  if (a.sysenter_cs != b.sysenter_cs || a.sysenter_esp != b.sysenter_esp ||
      a.sysenter_eip != b.sysenter_eip) {
    return "sysenter";
  }
  return "";
}

class Scenario {
 public:
  explicit Scenario(uint32_t seed) : rng_(seed) {}
  uint32_t pick(uint32_t n) { return rng_() % n; }
  bool chance(uint32_t percent) { return pick(100) < percent; }

 private:
  std::mt19937 rng_;
};

TEST_F(FastPathTest, DeliveryAndIretMatchTheGeneralPath) {
  constexpr uint8_t kGateTypes[] = {0xe, 0xf, 0xe, 0xf, 0x6, 0x5, 0x9};
  const uint16_t kTargets[] = {kKernelCs, kKernelCs, kKernelCs,
                               kUserCs,   kConfCs,   0x68 /* 16-bit */,
                               kKernelDs, 0,         0xa8 /* DPL1 code */,
                               0xfff8};
  int fast_taken = 0, total = 0;
  for (uint32_t seed = 1; seed <= 1500; ++seed) {
    mem.not_present.clear();
    s = VcpuState{};
    SetUp();
    Scenario sc(seed);
    // The machine as the scenario wants it.
    if (sc.chance(85)) set_gdt(1, seg_desc(0, 0xfffff, 0xb, true, 0));  // kernel code accessed
    if (sc.chance(15)) set_gdt(2, seg_desc(0, 0xfffff, 0x2, true, 0));  // SS0 not accessed
    if (sc.chance(10)) set_gdt(2, seg_desc(0, 0xfffff, 0x7, true, 0));  // SS0 expand-down
    if (sc.chance(10)) mem.put32(kTss + 4, 8 + 4 * sc.pick(4));         // ESP0 near 0
    if (sc.chance(10)) mem.not_present.insert((kKernelStackTop - 4) >> 12);
    if (sc.chance(10)) mem.put16(kTss + 8, static_cast<uint16_t>(sc.pick(0x100)));
    const uint8_t vector = static_cast<uint8_t>(sc.chance(50) ? 0x80 : sc.pick(256));
    if (sc.chance(50)) {  // a kernel's usual gate
      set_idt(vector, gate_desc(kKernelCs, handler(vector), sc.chance(50) ? 0xe : 0xf, 3));
    } else {
      // (One random draw a statement: the order of a call's arguments is unspecified, and the
      // scenarios must not depend on the compiler.)
      const uint16_t target = kTargets[sc.pick(std::size(kTargets))];
      const uint8_t type = kGateTypes[sc.pick(std::size(kGateTypes))];
      const unsigned dpl = sc.pick(4);
      const bool present = sc.chance(90);
      set_idt(vector, gate_desc(target, handler(vector), type, dpl, present));
    }
    if (sc.chance(5)) s.idtr.limit = static_cast<uint16_t>(vector * 8 + sc.pick(8) - 1);
    if (sc.chance(50)) {
      enter_cpl3();
    } else {
      enter_cpl0();
    }
    if (sc.chance(10)) s.gpr[kEsp] = sc.pick(24);
    s.eflags = eflags::kFixed1;
    if (sc.chance(50)) s.eflags |= eflags::kIf;
    if (sc.chance(10)) s.eflags |= eflags::kTf;
    if (sc.chance(10)) s.eflags |= eflags::kRf;
    if (sc.chance(30)) s.eflags |= eflags::kCf | eflags::kZf;
    if (sc.chance(20)) s.eflags |= 0x3000u;
    // What happens: INT n / INT3 / IRET through the emulator, or an exception / interrupt.
    const unsigned what = sc.pick(5);
    if (what == 4) {  // an IRET frame on the current stack
      const bool outer = sc.chance(50);
      uint16_t cs = outer ? kUserCs : s.seg[kCs].selector;
      if (!sc.chance(80)) {
        cs = kTargets[sc.pick(10)];
        cs = static_cast<uint16_t>(cs | sc.pick(4));
      }
      const uint16_t ss = static_cast<uint16_t>(sc.chance(80) ? kUserDs : sc.pick(0x100));
      uint32_t flags = eflags::kFixed1;
      if (sc.chance(50)) flags |= eflags::kIf;
      if (sc.chance(5)) flags |= eflags::kVm;
      if (sc.chance(10)) flags |= eflags::kNt;
      if (sc.chance(20)) flags |= 0x3000u;
      if (sc.chance(10)) flags |= eflags::kRf;
      const uint32_t frame[5] = {0x12345, cs, flags, kUserStackTop - 0x40, ss};
      if (s.gpr[kEsp] < 20) s.gpr[kEsp] = 20 + sc.pick(16);
      s.gpr[kEsp] -= 20;
      for (unsigned i = 0; i < 5; ++i) mem.put32(s.seg[kSs].base + s.gpr[kEsp] + 4 * i, frame[i]);
      if (sc.chance(10)) s.eflags |= eflags::kNt;
      code({0xcf});
    } else if (what == 0) {
      code({0xcd, vector});
    } else if (what == 1) {
      code({0xcc});
    }
    const uint32_t error_code = sc.pick(0x10000);
    auto run = [&](bool fast) {
      emu.set_fast_paths(fast);
      StepResult r;
      if (what == 2) {
        r = emu.raise(s, vector, true, error_code);
      } else if (what == 3) {
        r = emu.deliver_interrupt(s, vector);
      } else {
        r = step();
      }
      return Outcome{r.kind, s, mem.bytes};
    };
    const VcpuState start = s;
    const std::vector<uint8_t> start_memory = mem.bytes;
    const Outcome general = run(false);
    s = start;
    mem.bytes = start_memory;
    const uint64_t taken_before = emu.fast_paths_taken();
    const Outcome fast = run(true);
    ++total;
    if (emu.fast_paths_taken() != taken_before) ++fast_taken;
    SCOPED_TRACE(::testing::Message()
                 << "seed " << seed << " what " << what << " vector " << int{vector});
    ASSERT_EQ(fast.kind, general.kind);
    ASSERT_EQ(register_difference(fast.state, general.state), "")
        << "eip " << std::hex << fast.state.eip << " vs " << general.state.eip << " esp "
        << fast.state.gpr[kEsp] << " vs " << general.state.gpr[kEsp] << " eflags "
        << fast.state.eflags << " vs " << general.state.eflags << " cr2 " << fast.state.cr2
        << " vs " << general.state.cr2;
    ASSERT_TRUE(fast.memory == general.memory);
  }
  // Enough of the situations are the common case for the comparison to mean something.
  EXPECT_GT(fast_taken, total / 5) << fast_taken << " of " << total;
  std::printf("%d of %d situations took a fast path\n", fast_taken, total);
  RecordProperty("situations", total);
}

TEST_F(FastPathTest, SysenterAndSysexitAgreeWithTheGeneralPath) {
  // BtEngine's SYSENTER/SYSEXIT fast path (SystemEmulator::fast_system_call) against the general
  // path executing the same instruction: CPL 0 and 3, IA32_SYSENTER_CS giving the segments
  // already loaded or others (or 0: the fast path declines), TF/VM set (it declines). Where it
  // runs, the state and the segments reported loaded must be the general path's.
  std::mt19937 rng(4242);
  int taken = 0;
  for (int n = 0; n < 2000; ++n) {
    const bool enter = rng() % 2;
    if (rng() % 2) {
      enter_cpl3();
    } else {
      enter_cpl0();
    }
    static constexpr uint16_t kMsrCs[] = {kKernelCs, kKernelCs | 3, 0x60, 0x0, 0x3};
    s.sysenter_cs = kMsrCs[rng() % 5];
    s.sysenter_esp = 0x9000 + 4 * (rng() % 64);
    s.sysenter_eip = 0x5000 + (rng() % 256);
    s.gpr[kEcx] = 0x7000 + (rng() % 256);
    s.gpr[kEdx] = 0x6000 + (rng() % 256);
    s.eflags = eflags::kFixed1 | ((rng() % 2) ? eflags::kIf : 0) | ((rng() % 4) ? 0 : eflags::kRf);
    if (rng() % 20 == 0) s.eflags |= eflags::kTf;
    code({0x0f, static_cast<uint8_t>(enter ? 0x34 : 0x35)});
    const VcpuState start = s;
    const std::vector<uint8_t> start_memory = mem.bytes;
    emu.set_fast_paths(false);
    const StepResult general = step();
    const VcpuState after_general = s;
    s = start;
    mem.bytes = start_memory;
    sys::Insn insn{};
    insn.zi.mnemonic = enter ? ZYDIS_MNEMONIC_SYSENTER : ZYDIS_MNEMONIC_SYSEXIT;
    insn.eip = s.eip;
    insn.next_eip = s.eip + 2;
    if (!emu.fast_system_call(s, insn)) continue;  // declined: the general path runs instead
    ++taken;
    SCOPED_TRACE(::testing::Message() << "case " << n << " enter " << enter << " msr cs "
                                      << start.sysenter_cs << " cpl " << start.cpl());
    ASSERT_EQ(general.kind, StepKind::kDone);
    ASSERT_EQ(register_difference(s, after_general), "");
  }
  EXPECT_GT(taken, 500);
}

}  // namespace
}  // namespace vmbt::bt::testing
