// Exception and interrupt delivery through the IDT (Intel SDM Vol. 3A §6.10-6.15; Vol. 2A INT n).
#include <fmt/format.h>

#include <vector>

#include "bt/debug_registers.h"
#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"

namespace vmbt::bt {

using sys::Descriptor;
using sys::Event;

namespace {

/// Exception classes for double-fault detection (Intel SDM Vol. 3A Table 6-4).
enum class Class { kBenign, kContributory, kPageFault, kDoubleFault };

Class classify_vector(uint8_t v) {
  switch (v) {
    case sys::vec::kDe:
    case sys::vec::kTs:
    case sys::vec::kNp:
    case sys::vec::kSs:
    case sys::vec::kGp:
      return Class::kContributory;
    case sys::vec::kPf:
      return Class::kPageFault;
    case sys::vec::kDf:
      return Class::kDoubleFault;
    default:
      return Class::kBenign;
  }
}

/// Software interrupts and external interrupts are benign first events (Table 6-5).
Class classify(const Event& ev) {
  return ev.kind == Event::Kind::kException ? classify_vector(ev.vector) : Class::kBenign;
}

std::string describe(const Event& ev) {
  switch (ev.kind) {
    case Event::Kind::kSoftware:
      return fmt::format("INT {:#04x}", ev.vector);
    case Event::Kind::kExternal:
      return fmt::format("interrupt {:#04x}", ev.vector);
    case Event::Kind::kIcebp:
      return "INT1";
    case Event::Kind::kException:
      break;
  }
  if (ev.pushes_error_code()) return fmt::format("vector {}({:#x})", ev.vector, ev.error_code);
  return fmt::format("vector {}", ev.vector);
}

}  // namespace

// Delivers `ev`, handling exceptions raised during delivery as Intel SDM Vol. 3A §6.15
// (Interrupt 8) and Table 6-5 say: contributory+contributory or #PF+(contributory|#PF) -> #DF;
// any fault while delivering #DF -> shutdown; otherwise the new exception is delivered serially.
StepResult SystemEmulator::deliver_event(VcpuState& s, Event ev) {
  event_delivered_ = true;
  interrupt_shadow = false;
  if (fast_deliver(s, ev)) return {};
  VcpuRegisters before = s;
  // The events of a nested delivery, described only if it ends in a shutdown. The first is the
  // event itself; the rest are noted only when a delivery faults, so the common path neither
  // allocates nor clears a buffer.
  const Event first_event = ev;
  std::vector<Event> chain_events;
  auto note = [&](const Event& e) {
    if (chain_events.size() < 40) chain_events.push_back(e);
  };
  auto chain = [&] {
    std::string out = describe(first_event);
    for (const Event& e : chain_events) out += " -> " + describe(e);
    return out;
  };
  for (int attempt = 0; attempt < 16; ++attempt) {
    GuestFault f{};
    try {
      deliver_once(s, ev);
      if (!task_trap_pending_) return {};
      // The event went through a task gate into a TSS with T set: #DB with DR6.BT before the
      // new task's first instruction (Intel SDM Vol. 3B §17.3.1.5), delivered in that task.
      task_trap_pending_ = false;
      s.dr[6] |= dr::kBt;
      before = s;
      ev = Event{};
      ev.vector = sys::vec::kDb;
      ev.return_eip = s.eip;
      continue;
    } catch (const sys::FaultInNewTask& in_new_task) {
      // A task gate's switch completed and the fault came after (the error code's push on the
      // new task's stack): it is delivered in the new task (Intel SDM Vol. 3A §8.3), no rollback.
      before = s;
      f = in_new_task.fault;
    } catch (const GuestFault& fault) {
      roll_back(s, before);
      f = fault;
    } catch (const sys::Unsupported& u) {
      roll_back(s, before);
      return {StepKind::kUnsupported, {}, u.message};
    }
    const Class first = classify(ev);
    const Class second = classify_vector(f.vector);
    Event next;
    next.return_eip = s.eip;
    if (first == Class::kDoubleFault) {
      note(Event{f.vector, Event::Kind::kException, f.error_code, 0, true});
      return {StepKind::kShutdown,
              {},
              fmt::format("triple fault (shutdown) at CS:EIP={:04x}:{:08x}: {}",
                          s.seg[kCs].selector, s.eip, chain())};
    }
    if ((first == Class::kContributory && second == Class::kContributory) ||
        (first == Class::kPageFault && second != Class::kBenign)) {
      note(Event{f.vector, Event::Kind::kException, f.error_code, 0, true});
      next.vector = sys::vec::kDf;
      next.error_code = 0;
    } else {
      next.vector = f.vector;
      next.error_code = f.error_code;
      next.fault = sys::exception_is_fault(f.vector);
    }
    note(next);
    ev = next;
  }
  return {StepKind::kShutdown,
          {},
          fmt::format("shutdown: endless exception chain at CS:EIP={:04x}:{:08x}: {}",
                      s.seg[kCs].selector, s.eip, chain())};
}

// Protected-mode delivery through an interrupt or trap gate (Intel SDM Vol. 2A INT n pseudocode,
// Vol. 3A §6.12.1): gate checks, stack switch through the TSS for a more privileged handler,
// the frame (SS, ESP,) EFLAGS, CS, EIP (, error code), then TF/NT/RF/VM (and IF) cleared. From
// virtual-8086 mode (§20.3.1.1) the handler must be a DPL-0 non-conforming code segment; GS, FS,
// DS and ES are pushed before SS and loaded with null selectors.
void SystemEmulator::deliver_once(VcpuState& s, const Event& ev) {
  if (!(s.cr0 & cr0::kPe)) {
    deliver_real_mode(s, ev);
    return;
  }
  const uint32_t ext = ev.ext() ? 1 : 0;
  const unsigned old_cpl = sys::cpl(s);
  const uint32_t idt_code = ev.vector * 8u + 2 + ext;
  if (ev.vector * 8u + 7 > s.idtr.limit) sys::gp(idt_code);
  const Descriptor gate = sys::read_descriptor(mem_, s.idtr.base + ev.vector * 8u);
  const uint8_t type = gate.type();
  const bool valid =
      !gate.s() && (type == sys::kTaskGate || type == sys::kIntGate16 || type == sys::kTrapGate16 ||
                    type == sys::kIntGate32 || type == sys::kTrapGate32);
  if (!valid) sys::gp(idt_code);
  if (ev.kind == Event::Kind::kSoftware && gate.dpl() < old_cpl) sys::gp(ev.vector * 8u + 2);
  if (!gate.present()) sys::fault(sys::vec::kNp, idt_code);
  // RF in the pushed (or, through a task gate, saved) EFLAGS image (Intel SDM Vol. 3A
  // §17.3.1.1): 1 for fault-class exceptions, 0 for software interrupts (RF is cleared at their
  // start), else the current value.
  uint32_t flags_image = s.eflags;
  if (ev.fault) flags_image |= eflags::kRf;
  if (!ev.ext() || ev.kind == Event::Kind::kIcebp) flags_image &= ~eflags::kRf;
  if (type == sys::kTaskGate) {
    // Intel SDM Vol. 2A INT n "TASK-GATE": the old task resumes at the event's return EIP.
    task_switch(s, gate.gate_selector(), TaskSwitch::kEvent, ev.return_eip, flags_image, &ev);
    return;
  }
  const bool gate32 = type & 8;
  const bool trap_gate = type & 1;
  const uint16_t sel = gate.gate_selector();
  if (sys::is_null_selector(sel)) sys::gp(ext);
  uint32_t cs_addr = 0;
  Descriptor cd = sys::fetch_descriptor(mem_, s, sel, sys::vec::kGp, ext, &cs_addr);
  if (!cd.is_code() || cd.dpl() > old_cpl) sys::gp(sys::sel_code(sel, ext));
  if (!cd.present()) sys::fault(sys::vec::kNp, sys::sel_code(sel, ext));

  const uint32_t new_eip = gate32 ? gate.gate_offset() : gate.gate_offset() & 0xffff;
  const unsigned psize = gate32 ? 4 : 2;
  const bool push_err = ev.pushes_error_code();
  const uint16_t old_cs = s.seg[kCs].selector;
  unsigned new_cpl;

  const bool from_vm86 = sys::vm86(s);
  if (!cd.conforming() && cd.dpl() < old_cpl) {
    // INTER-PRIVILEGE-LEVEL-INTERRUPT: new stack from the TSS. From virtual-8086 mode
    // (INTERRUPT-FROM-VIRTUAL-8086-MODE) only to a DPL-0 handler, else #GP(selector).
    new_cpl = cd.dpl();
    if (from_vm86 && new_cpl != 0) sys::gp(sys::sel_code(sel, ext));
    uint16_t new_ss;
    uint32_t new_esp;
    read_tss_stack(s, new_cpl, ext, &new_ss, &new_esp);
    if (sys::is_null_selector(new_ss)) sys::fault(sys::vec::kTs, ext);
    uint32_t ss_addr = 0;
    Descriptor sd = sys::fetch_descriptor(mem_, s, new_ss, sys::vec::kTs, ext, &ss_addr);
    if ((new_ss & 3) != new_cpl) sys::fault(sys::vec::kTs, sys::sel_code(new_ss, ext));
    if (sd.dpl() != new_cpl || !sd.writable())
      sys::fault(sys::vec::kTs, sys::sel_code(new_ss, ext));
    if (!sd.present()) sys::fault(sys::vec::kSs, sys::sel_code(new_ss, ext));
    sys::StackPtr sp;
    sp.ss = sys::segment_from(new_ss, sd);
    sp.esp = new_esp;
    sp.user = new_cpl == 3;
    // From virtual-8086 mode GS, FS, DS and ES go first (Intel SDM Vol. 3A §20.3.1.1, Figure
    // 20-5), each in a slot of the gate's size.
    const unsigned extra = from_vm86 ? 4 : 0;
    const unsigned count = (push_err ? 6 : 5) + extra;
    sys::check_push_room(sp, count * psize, sys::vec::kSs, sys::sel_code(new_ss, ext));
    if (new_eip > cd.limit()) sys::gp(ext);
    sys::set_accessed(mem_, ss_addr, sd);
    sys::set_accessed(mem_, cs_addr, cd);
    sp.ss = sys::segment_from(new_ss, sd);
    const uint32_t frame[10] = {
        s.seg[kGs].selector, s.seg[kFs].selector, s.seg[kDs].selector, s.seg[kEs].selector,
        s.seg[kSs].selector, s.gpr[kEsp],         flags_image,         old_cs,
        ev.return_eip,       ev.error_code};
    sys::push_frame(mem_, sp, frame + 4 - extra, count, psize);
    s.seg[kSs] = sp.ss;
    s.gpr[kEsp] = new_esp;
    sys::commit_esp(s, sp);
    if (from_vm86) {
      // Null selectors, unusable in protected mode (Vol. 2A INT n: GS <- 0 ... ES <- 0).
      for (unsigned seg : {kGs, kFs, kDs, kEs}) s.seg[seg] = sys::null_segment(0);
    }
  } else {
    // INTRA-PRIVILEGE-LEVEL-INTERRUPT: conforming handler or DPL == CPL; never from
    // virtual-8086 mode (#GP(selector), Vol. 2A INT n).
    if (from_vm86) sys::gp(sys::sel_code(sel, ext));
    new_cpl = old_cpl;
    sys::StackPtr sp = sys::current_stack(s);
    sys::check_push_room(sp, (push_err ? 4 : 3) * psize, sys::vec::kSs, ext);
    if (new_eip > cd.limit()) sys::gp(ext);
    sys::set_accessed(mem_, cs_addr, cd);
    const uint32_t frame[4] = {flags_image, old_cs, ev.return_eip, ev.error_code};
    sys::push_frame(mem_, sp, frame, push_err ? 4 : 3, psize);
    sys::commit_esp(s, sp);
  }
  s.seg[kCs] = sys::segment_from(static_cast<uint16_t>((sel & 0xfffc) | new_cpl), cd);
  s.eip = new_eip;
  s.eflags &= ~(eflags::kTf | eflags::kNt | eflags::kRf | eflags::kVm);
  if (!trap_gate) s.eflags &= ~eflags::kIf;
}

// The stack for privilege level `dpl` from the current TSS (Intel SDM Vol. 3A §7.2.1, Figure 7-2;
// Vol. 2A INT n: "TSSstackAddress + 5 > TSS limit -> #TS(TSS selector)").
void SystemEmulator::read_tss_stack(const VcpuState& s, unsigned dpl, uint32_t ext, uint16_t* ss,
                                    uint32_t* esp) {
  const SegmentReg& tr = s.tr;
  const uint32_t tr_code = sys::sel_code(tr.selector, ext);
  const bool tss32 = tr.type == sys::kTss32Avail || tr.type == sys::kTss32Busy;
  if (tss32) {
    const uint32_t addr = (dpl << 3) + 4;
    if (tr.unusable || addr + 5 > tr.limit) sys::fault(sys::vec::kTs, tr_code);
    *esp = sys::read_u(mem_, tr.base + addr, 4, false);
    *ss = static_cast<uint16_t>(sys::read_u(mem_, tr.base + addr + 4, 2, false));
  } else {
    const uint32_t addr = (dpl << 2) + 2;
    if (tr.unusable || addr + 3 > tr.limit) sys::fault(sys::vec::kTs, tr_code);
    *esp = sys::read_u(mem_, tr.base + addr, 2, false);
    *ss = static_cast<uint16_t>(sys::read_u(mem_, tr.base + addr + 2, 2, false));
  }
}

}  // namespace vmbt::bt
