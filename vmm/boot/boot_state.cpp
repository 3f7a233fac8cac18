#include "vmm/boot/boot_state.h"

namespace vmbt {

VcpuState flat_protected_mode_state(uint32_t entry_eip) {
  VcpuState st;
  st.gpr.fill(0);
  st.eip = entry_eip;
  st.eflags = eflags::kFixed1;
  // Type 0xb: code, execute/read, accessed. Type 0x3: data, read/write, accessed.
  st.seg[kCs] = SegmentReg::flat(kBootCodeSelector, 0xb);
  for (SegIndex i : {kEs, kSs, kDs, kFs, kGs}) st.seg[i] = SegmentReg::flat(kBootDataSelector, 0x3);

  st.ldtr = SegmentReg{};
  st.ldtr.type = 0x2;  // LDT, should anyone look at the type of an unusable LDTR
  st.ldtr.unusable = true;
  st.ldtr.present = false;

  st.tr = SegmentReg{};
  st.tr.selector = 0;
  st.tr.base = 0;
  st.tr.limit = 0x67;  // a 104-byte 32-bit TSS
  st.tr.type = 0xb;    // 32-bit TSS, busy
  st.tr.s = false;
  st.tr.present = true;

  st.gdtr = {0, 0};
  st.idtr = {0, 0};
  st.cr0 = cr0::kPe | cr0::kEt;
  st.cr2 = st.cr3 = st.cr4 = 0;
  st.efer = 0;
  return st;
}

VcpuState reset_state(uint32_t cpuid_signature) {
  VcpuState st;
  st.gpr.fill(0);
  st.gpr[kEdx] = cpuid_signature;
  st.eip = 0xfff0;
  st.eflags = eflags::kFixed1;
  // A real-mode segment as RESET leaves it: base = selector << 4 (CS excepted), 64 KiB limit,
  // present, S = 1, 16-bit, byte granular.
  auto real_mode = [](uint16_t selector, uint32_t base, uint8_t type) {
    SegmentReg s;
    s.selector = selector;
    s.base = base;
    s.limit = 0xffff;
    s.type = type;
    s.s = true;
    s.present = true;
    return s;
  };
  st.seg[kCs] = real_mode(0xf000, 0xffff0000u, 0xb);
  for (SegIndex i : {kEs, kSs, kDs, kFs, kGs}) st.seg[i] = real_mode(0, 0, 0x3);
  st.ldtr = SegmentReg{};
  st.ldtr.limit = 0xffff;
  st.ldtr.type = 0x2;
  st.ldtr.present = true;
  st.tr = SegmentReg{};
  st.tr.limit = 0xffff;
  st.tr.type = 0xb;
  st.tr.present = true;
  st.gdtr = {0, 0xffff};
  st.idtr = {0, 0xffff};
  st.cr0 = cr0::kCd | cr0::kNw | cr0::kEt;
  st.cr2 = st.cr3 = st.cr4 = 0;
  st.efer = 0;
  st.dr[6] = 0xffff0ff0u;
  st.dr[7] = 0x400;
  // FXSAVE image: FCW at 0, MXCSR at 24.
  st.fxsave[0] = 0x40;
  st.fxsave[24] = 0x80;
  st.fxsave[25] = 0x1f;
  return st;
}

}  // namespace vmbt
