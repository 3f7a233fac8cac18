// Hardware task switching (Intel SDM Vol. 3A ch. 8 "Task Management", §8.3; ch. 7 in editions
// before 2023): far CALL/JMP to a TSS or task gate, IRET with EFLAGS.NT, and task gates in the IDT.
#include <fmt/format.h>

#include <cstring>

#include "bt/debug_registers.h"
#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"

namespace vmbt::bt {

using sys::Descriptor;

namespace {

/// Offsets in a 32-bit TSS (Intel SDM Vol. 3A Figure 8-2).
enum TssField : uint32_t {
  kLink = 0x00,
  kCr3 = 0x1C,
  kEip = 0x20,
  kEflags = 0x24,
  kGprs = 0x28,   // EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI
  kSregs = 0x48,  // ES, CS, SS, DS, FS, GS (the order of SegIndex)
  kLdt = 0x60,
  kTrap = 0x64,      // T (debug trap) flag, bit 0
  kMinLimit = 0x67,  // a 32-bit TSS is at least 104 bytes
};

constexpr bool is_tss32(uint8_t type) {
  return type == sys::kTss32Avail || type == sys::kTss32Busy;
}

}  // namespace

void SystemEmulator::roll_back(VcpuState& s, const VcpuRegisters& before) {
  const uint32_t cr3 = s.cr3;
  sys::restore_state(s, before);
  if (s.cr3 != cr3) hooks_.on_paging_changed(s);
}

const char* SystemEmulator::task_switch_name(TaskSwitch reason) {
  switch (reason) {
    case TaskSwitch::kCall:
      return "CALL";
    case TaskSwitch::kJmp:
      return "JMP";
    case TaskSwitch::kIret:
      return "IRET";
    case TaskSwitch::kEvent:
      break;
  }
  return "an interrupt or exception";
}

// The task switch itself (§8.3, steps 3-13, and the checks of Table 8-1 "Exception Conditions
// Checked During a Task Switch"). The caller has checked the gate or TSS descriptor privilege and
// presence for its path. Every check, and every descriptor write the commit makes (probed), comes
// before the commit, so such a fault leaves the old task as it was and is delivered in its
// context. A processor delivers the faults it finds after the commit point (an invalid segment
// field of the new TSS) in the new task's context instead, and reads the new LDT through the new
// CR3; vmbt differs there only for such broken TSSs. The one fault possible after the commit, the
// error code's push on the new stack, is delivered in the new task (sys::FaultInNewTask).
void SystemEmulator::task_switch(VcpuState& s, uint16_t tss_sel, TaskSwitch reason,
                                 uint32_t old_eip, uint32_t old_eflags, const sys::Event* event) {
  const uint32_t ext = event && event->ext() ? 1 : 0;
  const uint32_t tss_code = sys::sel_code(tss_sel, ext);
  // The new TSS descriptor: in the GDT (TI=0), a TSS, busy for IRET and available otherwise.
  if ((tss_sel & 4) || sys::is_null_selector(tss_sel)) {
    sys::fault(reason == TaskSwitch::kIret ? sys::vec::kTs : sys::vec::kGp, tss_code);
  }
  uint32_t tss_addr = 0;
  Descriptor tss = sys::fetch_descriptor(
      mem_, s, tss_sel, reason == TaskSwitch::kIret ? sys::vec::kTs : sys::vec::kGp, ext,
      &tss_addr);
  const uint8_t type = tss.type();
  const bool busy = type == sys::kTss32Busy || type == sys::kTss16Busy;
  if (tss.s() || (type != sys::kTss16Avail && type != sys::kTss16Busy && !is_tss32(type))) {
    sys::fault(reason == TaskSwitch::kIret ? sys::vec::kTs : sys::vec::kGp, tss_code);
  }
  if (reason == TaskSwitch::kIret ? !busy : busy) {
    sys::fault(reason == TaskSwitch::kIret ? sys::vec::kTs : sys::vec::kGp, tss_code);
  }
  if (!tss.present()) sys::fault(sys::vec::kNp, tss_code);
  if (!is_tss32(type)) {
    throw sys::Unsupported{fmt::format(
        "16-bit task switches are not supported: {} to 16-bit TSS {:#06x} at CS:EIP={:04x}:{:08x}",
        task_switch_name(reason), tss_sel, s.seg[kCs].selector, s.eip)};
  }
  if (tss.limit() < kMinLimit) sys::fault(sys::vec::kTs, tss_code);
  const SegmentReg& old_tr = s.tr;
  if (old_tr.unusable || !is_tss32(old_tr.type) || old_tr.limit < kLdt - 1) {
    sys::fault(sys::vec::kTs, sys::sel_code(old_tr.selector, ext));
  }

  // The new task's state (read through the current page tables, as the processor does).
  uint8_t image[kMinLimit + 1];
  mem_.read(tss.base(), image, sizeof image, false);
  auto field32 = [&](uint32_t off) {
    uint32_t v;
    std::memcpy(&v, image + off, 4);
    return v;
  };
  auto field16 = [&](uint32_t off) { return static_cast<uint16_t>(field32(off)); };
  VcpuState next = s;
  next.cr3 = (s.cr0 & cr0::kPg) ? field32(kCr3) : s.cr3;
  next.eip = field32(kEip);
  // EFLAGS as the TSS holds it, reserved bits as the processor keeps them (bit 1 set, 3, 5, 15
  // and 22-31 clear).
  next.eflags = (field32(kEflags) & 0x003F7FD5u) | eflags::kFixed1;
  for (unsigned i = 0; i < 8; ++i) next.gpr[i] = field32(kGprs + 4 * i);
  // A TSS whose EFLAGS has VM = 1 starts a virtual-8086 task (Intel SDM Vol. 3A §20.2.5): its
  // segment registers load as virtual-8086 mode loads them, unchecked, at CPL 3.
  const bool to_vm86 = next.eflags & eflags::kVm;
  if (reason == TaskSwitch::kCall || reason == TaskSwitch::kEvent) next.eflags |= eflags::kNt;

  // The LDT, then the segment registers, checked as Table 8-1 says, with the new LDT.
  const uint16_t ldt_sel = field16(kLdt);
  if (sys::is_null_selector(ldt_sel)) {
    next.ldtr = sys::null_segment(ldt_sel);
  } else {
    const uint32_t code = sys::sel_code(ldt_sel, ext);
    if (ldt_sel & 4) sys::fault(sys::vec::kTs, code);
    const Descriptor d = sys::fetch_descriptor(mem_, s, ldt_sel, sys::vec::kTs, ext, nullptr);
    if (d.s() || d.type() != sys::kLdt || !d.present()) sys::fault(sys::vec::kTs, code);
    next.ldtr = sys::segment_from(ldt_sel, d);
  }
  uint16_t sel[6];
  for (unsigned i = 0; i < 6; ++i) sel[i] = field16(kSregs + 4 * i);
  const unsigned new_cpl = to_vm86 ? 3 : sel[kCs] & 3u;
  Descriptor desc[6];
  uint32_t desc_addr[6] = {};
  if (to_vm86) {
    for (unsigned i = 0; i < 6; ++i) load_real_mode_segment(next, i, sel[i]);
    if (next.eip > 0xffff) sys::gp(ext);  // past the CS limit, as below for protected mode
  }
  // CS: a present code segment, DPL = RPL (non-conforming) or DPL <= RPL (conforming).
  if (!to_vm86) {
    const uint32_t code = sys::sel_code(sel[kCs], ext);
    if (sys::is_null_selector(sel[kCs])) sys::fault(sys::vec::kTs, code);
    desc[kCs] = sys::fetch_descriptor(mem_, next, sel[kCs], sys::vec::kTs, ext, &desc_addr[kCs]);
    const Descriptor& d = desc[kCs];
    if (!d.is_code() || (d.conforming() ? d.dpl() > new_cpl : d.dpl() != new_cpl)) {
      sys::fault(sys::vec::kTs, code);
    }
    if (!d.present()) sys::fault(sys::vec::kNp, code);
    if (next.eip > d.limit()) sys::gp(ext);
  }
  // SS: a present writable data segment with RPL = DPL = the new CPL; not present is #SS.
  if (!to_vm86) {
    const uint32_t code = sys::sel_code(sel[kSs], ext);
    if (sys::is_null_selector(sel[kSs])) sys::fault(sys::vec::kTs, code);
    desc[kSs] = sys::fetch_descriptor(mem_, next, sel[kSs], sys::vec::kTs, ext, &desc_addr[kSs]);
    const Descriptor& d = desc[kSs];
    if (!d.writable() || (sel[kSs] & 3u) != new_cpl || d.dpl() != new_cpl) {
      sys::fault(sys::vec::kTs, code);
    }
    if (!d.present()) sys::fault(sys::vec::kSs, code);
  }
  // DS, ES, FS, GS: null, or readable with DPL >= max(CPL, RPL) unless conforming code.
  for (unsigned i : {kEs, kDs, kFs, kGs}) {
    if (to_vm86 || sys::is_null_selector(sel[i])) continue;
    const uint32_t code = sys::sel_code(sel[i], ext);
    desc[i] = sys::fetch_descriptor(mem_, next, sel[i], sys::vec::kTs, ext, &desc_addr[i]);
    const Descriptor& d = desc[i];
    if (!d.readable()) sys::fault(sys::vec::kTs, code);
    if (!d.conforming() && d.dpl() < std::max(new_cpl, sel[i] & 3u)) {
      sys::fault(sys::vec::kTs, code);
    }
    if (!d.present()) sys::fault(sys::vec::kNp, code);
  }
  // An exception's error code goes on the new task's stack (§6.12.2): room checked now.
  const bool push_error = event && event->pushes_error_code();
  sys::StackPtr stack;
  if (push_error) {
    stack.ss = to_vm86 ? next.seg[kSs] : sys::segment_from(sel[kSs], desc[kSs]);
    stack.esp = next.gpr[kEsp];
    stack.user = new_cpl == 3;
    sys::check_push_room(stack, 4, sys::vec::kSs, ext);  // #SS(EXT): INT n "TASK-GATE"
  }

  // The descriptor writes of the commit, probed now (each written with its own value): after this
  // no write of the commit can fault. The accessed bits are set now, as the processor sets them
  // while it loads the descriptors.
  uint32_t old_addr = 0;
  Descriptor old_desc;
  if (reason == TaskSwitch::kJmp || reason == TaskSwitch::kIret) {
    old_desc = sys::fetch_descriptor(mem_, s, old_tr.selector, sys::vec::kTs, ext, &old_addr);
    sys::set_busy(mem_, old_addr, old_desc, old_desc.type() == sys::kTss32Busy);
  }
  sys::set_busy(mem_, tss_addr, tss, busy);
  if (reason == TaskSwitch::kCall || reason == TaskSwitch::kEvent) {
    uint16_t link = 0;
    mem_.read(tss.base() + kLink, &link, 2, false);
    mem_.write(tss.base() + kLink, &link, 2, false);
  }
  for (unsigned i = 0; i < 6; ++i) {
    if (desc_addr[i]) sys::set_accessed(mem_, desc_addr[i], desc[i]);
  }

  // Commit. The old task's dynamic state goes into its TSS (NT cleared for IRET, which leaves a
  // nested task for good; Table 8-2); the busy bits follow the reason; the new task links back
  // for CALL and events.
  uint32_t saved_flags = old_eflags;
  if (reason == TaskSwitch::kIret) saved_flags &= ~eflags::kNt;
  uint8_t old_state[kLdt - kEip];
  auto put32 = [&](uint32_t off, uint32_t v) { std::memcpy(old_state + (off - kEip), &v, 4); };
  put32(kEip, old_eip);
  put32(kEflags, saved_flags);
  for (unsigned i = 0; i < 8; ++i) put32(kGprs + 4 * i, s.gpr[i]);
  for (unsigned i = 0; i < 6; ++i) put32(kSregs + 4 * i, s.seg[i].selector);
  // The selector fields are 16 bits with a reserved upper half: keep what the TSS holds there.
  for (unsigned i = 0; i < 6; ++i) {
    uint8_t high[2];
    mem_.read(old_tr.base + kSregs + 4 * i + 2, high, 2, false);
    std::memcpy(old_state + (kSregs - kEip) + 4 * i + 2, high, 2);
  }
  mem_.write(old_tr.base + kEip, old_state, sizeof old_state, false);
  if (reason == TaskSwitch::kJmp || reason == TaskSwitch::kIret) {
    sys::set_busy(mem_, old_addr, old_desc, false);
  }
  if (reason != TaskSwitch::kIret) sys::set_busy(mem_, tss_addr, tss, true);
  if (reason == TaskSwitch::kCall || reason == TaskSwitch::kEvent) {
    const uint16_t link = old_tr.selector;
    mem_.write(tss.base() + kLink, &link, 2, false);
  }
  for (unsigned i = 0; i < 6 && !to_vm86; ++i) {
    if (i != kCs && i != kSs && sys::is_null_selector(sel[i])) {
      next.seg[i] = sys::null_segment(sel[i]);
      continue;
    }
    next.seg[i] = sys::segment_from(sel[i], desc[i]);
  }
  next.tr = sys::segment_from(tss_sel, tss);
  next.cr0 |= cr0::kTs;
  // L0-L3 enable the old task's breakpoints only: cleared at every task switch, G0-G3 kept
  // (Intel SDM Vol. 3B §17.2.4).
  const bool local_breakpoints = next.dr[7] & dr::kDr7LocalEnables;
  next.dr[7] &= ~dr::kDr7LocalEnables;
  const bool new_space = next.cr3 != s.cr3;
  // A task switch that loads CR3 under PAE paging loads the PDPTE registers too (Intel SDM
  // Vol. 3A §4.4.1, as MOV CR3); an invalid PDPT leaves them as they were (the SDM's checks of
  // Table 8-1 do not name it).
  if (new_space && (next.cr0 & cr0::kPg) && (next.cr4 & cr4::kPae)) {
    hooks_.load_pdptes(next.cr3, &next.pdpte);
  }
  static_cast<VcpuRegisters&>(s) = next;
  if (new_space) hooks_.on_paging_changed(s);
  if (local_breakpoints) hooks_.on_debug_registers_changed(s);
  task_trap_pending_ = field16(kTrap) & 1;
  if (push_error) {
    stack.esp = s.gpr[kEsp];
    try {
      sys::push(mem_, stack, event->error_code, 4);
    } catch (const GuestFault& f) {
      throw sys::FaultInNewTask{f};  // the new task's stack is not mapped (a #PF there)
    }
    sys::commit_esp(s, stack);
  }
}

}  // namespace vmbt::bt
