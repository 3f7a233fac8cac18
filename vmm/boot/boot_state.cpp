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

}  // namespace vmbt
