// Handing a guest between the engines (vmm/switching_engine.h): the architectural state a switch
// carries, field by field, through bt -> kvm -> bt. The list of fields is the guest state a
// hardware monitor saves and restores (Intel SDM Vol. 3C §25.4, "Guest-State Area": control and
// debug registers, RSP/RIP/RFLAGS, every segment register with its hidden part, GDTR/IDTR,
// LDTR/TR, the SYSENTER MSRs, plus the general registers and the x87/SSE image a VMM keeps
// itself, and the TSC). Oracle: the values put in. Needs /dev/kvm (an unpaged state: kvm-pvm
// runs those); skipped otherwise.
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>

#include <cstdio>
#include <cstring>
#include <memory>

#include "bt/bt_engine.h"
#include "cli/guest_session.h"
#include "hw/x86/kvm_engine.h"
#include "hw/x86/kvm_probe.h"
#include "vmm/devices/buffer_console.h"
#include "vmm/error.h"
#include "vmm/machine/machine.h"

namespace vmbt {
namespace {

SegmentReg segment(uint16_t selector, uint32_t base, uint32_t limit, uint8_t type, bool db) {
  SegmentReg s;
  s.selector = selector;
  s.base = base;
  s.limit = limit;
  s.type = type;
  s.dpl = 0;
  s.s = s.present = true;
  s.db = db;
  s.g = limit > 0xfffff;
  return s;
}

/// Every field a switch must carry, with values no engine would make up on its own.
VcpuState distinctive_state() {
  VcpuState s;
  for (unsigned i = 0; i < 8; ++i) s.gpr[i] = 0x10203040u + 0x01010101u * i;
  s.eip = 0x00012345;
  s.eflags = eflags::kFixed1 | eflags::kCf | eflags::kZf | eflags::kOf | eflags::kDf | eflags::kIf |
             eflags::kAc;
  s.seg[kCs] = segment(0x08, 0, 0xffffffff, 0xb, true);
  s.seg[kSs] = segment(0x10, 0, 0xffffffff, 0x3, true);
  s.seg[kDs] = segment(0x18, 0x10000, 0xfffff, 0x3, true);
  s.seg[kEs] = segment(0x20, 0x20000, 0xffff, 0x3, false);
  s.seg[kFs] = segment(0x28, 0x123000, 0xfff, 0x1, true);
  s.seg[kGs] = segment(0x30, 0x456000, 0x7ff, 0x3, true);
  s.ldtr = segment(0x38, 0x9000, 0x7f, 0x2, false);
  s.ldtr.s = false;
  s.tr = segment(0x40, 0xa000, 0x67, 0xb, false);
  s.tr.s = false;
  s.gdtr = {0x5000, 0x47};
  s.idtr = {0x6000, 0x7ff};
  s.cr0 = cr0::kPe | cr0::kMp | cr0::kEt | cr0::kNe | cr0::kWp | cr0::kAm;
  s.cr2 = 0xdeadb000;
  s.cr3 = 0x0007f000;
  s.cr4 = cr4::kPse | cr4::kOsfxsr | cr4::kOsxmmexcpt | cr4::kDe;
  s.dr[0] = 0x1000;
  s.dr[1] = 0x2004;
  s.dr[2] = 0x3008;
  s.dr[3] = 0x400c;
  s.dr[6] = 0xffff0ff0;
  s.dr[7] = 0x00000400;
  s.sysenter_cs = 0x60;
  s.sysenter_esp = 0xc1234000;
  s.sysenter_eip = 0xc1005678;
  uint8_t* fx = s.fxsave.data();
  const uint16_t fcw = 0x027f, fsw = 0x3800, fop = 0x01d9;
  std::memcpy(fx + 0, &fcw, 2);
  std::memcpy(fx + 2, &fsw, 2);
  fx[4] = 0x81;  // abridged tag: ST registers 0 and 7 valid
  std::memcpy(fx + 6, &fop, 2);
  const uint32_t fip = 0x00101234, fdp = 0x00205678, mxcsr = 0x1fa0;
  std::memcpy(fx + 8, &fip, 4);
  std::memcpy(fx + 16, &fdp, 4);
  std::memcpy(fx + 24, &mxcsr, 4);
  for (int i = 0; i < 8 * 16; ++i) fx[32 + i] = static_cast<uint8_t>(i * 7 + 1);    // ST0-7
  for (int i = 0; i < 8 * 16; ++i) fx[160 + i] = static_cast<uint8_t>(i * 13 + 5);  // XMM0-7
  for (int i = 0; i < 8; ++i) {
    std::memset(fx + 32 + 16 * i + 10, 0, 6);  // the reserved bytes of each ST slot
  }
  return s;
}

void expect_segment(const SegmentReg& got, const SegmentReg& want, const char* name) {
  EXPECT_EQ(got.selector, want.selector) << name;
  EXPECT_EQ(got.base, want.base) << name;
  EXPECT_EQ(got.limit, want.limit) << name;
  EXPECT_EQ(got.type, want.type) << name;
  EXPECT_EQ(got.dpl, want.dpl) << name;
  EXPECT_EQ(got.s, want.s) << name;
  EXPECT_EQ(got.present, want.present) << name;
  EXPECT_EQ(got.db, want.db) << name;
  EXPECT_EQ(got.g, want.g) << name;
}

/// `skip_msr_like`: DR0-DR7 are not compared (kvm-pvm keeps none).
void expect_same_state(const VcpuState& got, const VcpuState& want, const char* where,
                       bool skip_msr_like = false) {
  SCOPED_TRACE(where);
  for (unsigned i = 0; i < 8; ++i) EXPECT_EQ(got.gpr[i], want.gpr[i]) << "gpr " << i;
  EXPECT_EQ(got.eip, want.eip);
  EXPECT_EQ(got.eflags, want.eflags);
  const char* names[6] = {"es", "cs", "ss", "ds", "fs", "gs"};
  for (unsigned i = 0; i < 6; ++i) expect_segment(got.seg[i], want.seg[i], names[i]);
  expect_segment(got.ldtr, want.ldtr, "ldtr");
  expect_segment(got.tr, want.tr, "tr");
  EXPECT_EQ(got.gdtr.base, want.gdtr.base);
  EXPECT_EQ(got.gdtr.limit, want.gdtr.limit);
  EXPECT_EQ(got.idtr.base, want.idtr.base);
  EXPECT_EQ(got.idtr.limit, want.idtr.limit);
  EXPECT_EQ(got.cr0, want.cr0);
  EXPECT_EQ(got.cr2, want.cr2);
  EXPECT_EQ(got.cr3, want.cr3);
  EXPECT_EQ(got.cr4, want.cr4);
  if (!skip_msr_like) {
    for (unsigned i : {0u, 1u, 2u, 3u, 6u, 7u}) EXPECT_EQ(got.dr[i], want.dr[i]) << "dr" << i;
  }
  EXPECT_EQ(got.sysenter_cs, want.sysenter_cs);
  EXPECT_EQ(got.sysenter_esp, want.sysenter_esp);
  EXPECT_EQ(got.sysenter_eip, want.sysenter_eip);
  // The x87/SSE image, but FCS and FDS (bytes 12-13, 20-21): KVM's FPU interface has no field
  // for them, and CPUs that set CPUID.(EAX=7):EBX[13] store them as zero anyway.
  for (size_t i = 0; i < 288; ++i) {
    if (i == 12 || i == 13 || i == 20 || i == 21) continue;
    EXPECT_EQ(got.fxsave[i], want.fxsave[i]) << "fxsave byte " << i;
  }
}

TEST(EngineSwitch, StateSurvivesBtToKvmToBt) {
  if (access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
  const KvmProbeResult host = probe_kvm();
  const bool pvm = host.pvm && !host.vmx && !host.svm;
  BufferConsole console;
  GuestConfig config;
  config.ram_bytes = 16u << 20;
  config.kernel = "unused.elf";  // a machine for a kernel (not loaded here), not for firmware
  Machine machine(config, console);
  bt::BtEngine bt(machine.memory(), machine.interrupts());
  std::unique_ptr<KvmEngine> kvm;
  try {
    kvm = std::make_unique<KvmEngine>(machine.memory(), machine.interrupts());
  } catch (const Error& e) {
    GTEST_SKIP() << "KVM unusable here: " << e.what();
  }
  VcpuState want = distinctive_state();
  if (pvm) {
    // kvm-pvm keeps no MSRs, debug registers, MXCSR or x87/MMX/XMM registers: the engine says
    // so instead of losing them (a switch there is refused), and the round trip goes on
    // without them.
    EXPECT_NE(kvm->cannot_run(want), "");
    want.sysenter_cs = want.sysenter_esp = want.sysenter_eip = 0;
    want.dr = {};
    want.dr[6] = 0xffff0ff0;
    want.dr[7] = 0x400;
    const uint32_t mxcsr = 0x1f80;
    std::memcpy(want.fxsave.data() + 24, &mxcsr, 4);
    // Nor x87/MMX or XMM values once guest code ran there: none held (tags empty, XMM zero).
    want.fxsave[4] = 0;
    std::fill(want.fxsave.begin() + 160, want.fxsave.begin() + 288, 0);
    std::printf(
        "note: kvm-pvm: the SYSENTER MSRs, DR0-DR7, MXCSR, x87/MMX/XMM values and the TSC are "
        "not carried (its KVM keeps none of them)\n");
  }
  EXPECT_EQ(kvm->cannot_run(want), "");
  bt.set_state(want);
  const VcpuState on_bt = bt.state();
  expect_same_state(on_bt, want, "bt");

  kvm->forget_guest_memory();
  kvm->set_state(on_bt);
  kvm->set_tsc(on_bt.tsc);
  const VcpuState on_kvm = kvm->state();
  expect_same_state(on_kvm, want, "bt -> kvm", pvm);

  bt.forget_guest_memory();
  bt.set_state(on_kvm);
  bt.set_tsc(on_kvm.tsc);
  const VcpuState back = bt.state();
  expect_same_state(back, want, "bt -> kvm -> bt", pvm);
  if (!pvm) {
    // The TSC goes on: never backwards, and not by more than a few seconds of this host's time.
    EXPECT_GE(on_kvm.tsc, on_bt.tsc);
    EXPECT_GE(back.tsc, on_kvm.tsc);
    EXPECT_LT(back.tsc - on_bt.tsc, 10'000'000'000ull);
  }
}

TEST(EngineSwitch, AutoPicksKvmOnlyWhereItRunsTheGuest) {
  // The rule of `--engine auto` (README): kvm where the host's KVM runs 32-bit paged guests with
  // the vmbt CPU model (VT-x/AMD-V), bt otherwise, each time with the reason.
  KvmProbeResult vtx;
  vtx.available = vtx.vmx = vtx.unpaged_guest_runs = vtx.paged_guest_runs = true;
  vtx.cpuid_model_set = true;
  EXPECT_EQ(choose_engine(vtx).kind, EngineKind::kKvm);
  KvmProbeResult amd = vtx;
  amd.vmx = false;
  amd.svm = true;
  EXPECT_EQ(choose_engine(amd).kind, EngineKind::kKvm);
  EXPECT_NE(choose_engine(amd).why.find("AMD-V"), std::string::npos);

  KvmProbeResult none;
  none.unavailable = "/dev/kvm: No such file or directory";
  EXPECT_EQ(choose_engine(none).kind, EngineKind::kBt);
  EXPECT_NE(choose_engine(none).why.find("No such file"), std::string::npos);
  KvmProbeResult pvm;
  pvm.available = pvm.pvm = pvm.unpaged_guest_runs = true;
  EXPECT_EQ(choose_engine(pvm).kind, EngineKind::kBt);
  EXPECT_NE(choose_engine(pvm).why.find("kvm-pvm"), std::string::npos);
  KvmProbeResult no_paging = vtx;
  no_paging.paged_guest_runs = false;
  no_paging.paged_detail = "MOV CR0 faulted";
  EXPECT_EQ(choose_engine(no_paging).kind, EngineKind::kBt);
  EXPECT_NE(choose_engine(no_paging).why.find("paging"), std::string::npos);
  KvmProbeResult no_model = vtx;
  no_model.cpuid_model_set = false;
  EXPECT_EQ(choose_engine(no_model).kind, EngineKind::kBt);
  EXPECT_NE(choose_engine(no_model).why.find("CPU model"), std::string::npos);
}

}  // namespace
}  // namespace vmbt
