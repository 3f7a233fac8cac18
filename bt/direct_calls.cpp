// Direct calls from translated code into the monitor (Stubs::direct_call): the fast paths on the
// context alone, the system emulator on the predecoded instruction, adaptive page-table stores,
// and where translated code goes on afterwards (docs/bt.md "Callouts as direct calls").
#include "bt/bt_engine.h"

#include <Zydis/Zydis.h>
#include <fmt/format.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "bt/fpu_class.h"
#include "bt/guest_operands.h"
#include "bt/host_fault_handler.h"
#include "bt/insn_policy.h"
#include "bt/legacy_ops.h"
#include "bt/masked_store.h"
#include "bt/segment_checks.h"
#include "vmm/cpu_model.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/irq.h"

namespace vmbt::bt {

uint64_t BtEngine::direct_call_entry(BtContext* ctx, void* site) {
  return static_cast<BtEngine*>(ctx->engine)->direct_call(*static_cast<CalloutSite*>(site));
}

uint64_t BtEngine::leave_direct_call() {
  load_context();
  ctx_->eip = s_.eip;
  ctx_->exit_kind = ExitKind::kDirectCall;
  return 0;
}

uint64_t BtEngine::direct_call(CalloutSite& site) {
  switch (site.kind) {
    case CalloutSite::Kind::kTableWriteBegin:
      return table_write_begin(site);
    case CalloutSite::Kind::kTableWriteEnd:
      return table_write_end(site);
    case CalloutSite::Kind::kAccessProbe:
      return access_probe(site);
    case CalloutSite::Kind::kDivideError: {
      // #DE without a host SIGFPE (Intel SDM Vol. 3A §6.15, vector 0: a fault, EIP at the DIV).
      ctx_->eip = site.insn.eip;
      store_context();
      bool done = false;
      Exit e = raise_exception(exc::kDe, done);
      return after_direct_exception(std::move(e), done);
    }
    case CalloutSite::Kind::kInstruction:
      break;
  }
  if (site.fast != CalloutSite::FastPath::kNone) {
    if (uint64_t next = fast_path(site)) return next == kLeave ? 0 : next;
  }
  // The guest state at the instruction, from the context the stub filled in.
  TranslationBlock* const from = site.tb;
  const uint32_t block_flags = from->key_flags;
  const uint64_t flushes = cache_.flushes();
  const uint8_t* const window = reinterpret_cast<const uint8_t*>(ctx_->window_base);
  const uint32_t space = mmu_.space_id();
  ctx_->eip = site.insn.eip;
  store_context();
  ++direct_calls_;
  ++callouts_by_mnemonic_[site.insn.zi.mnemonic];

  bool done = false;
  Exit e = run_callout(&site.insn.zi, site.insn.ops, &site.insn, done);
  // (A change of the guest's breakpoints may drop every translation, `site` with them: the
  // flush count below leaves before `site` is used again.)
  if (guest_breakpoints_changed_) update_guest_breakpoints();
  if (done) {
    direct_exit_ = std::move(e);
    direct_exit_pending_ = true;
    return leave_direct_call();
  }
  if (single_step_eip_ != UINT32_MAX || mmio_.stage != PendingMmio::kNone || io_pending_ ||
      cache_.flushes() != flushes || physical_change_pending()) {
    return leave_direct_call();
  }
  if (site.falls_through && s_.eip == site.insn.next_eip) {
    return resume_block(site, block_flags, flushes, window, space);
  }
  // A control transfer (or an exception delivered): on into the target's block.
  return transfer_to(key_flags(), &site);
}

uint64_t BtEngine::fast_path(CalloutSite& site) {
  // Works on the context alone (s_ holds what translated code cannot change: segments, control
  // registers, MSRs). 0 = not the common case after all: the system emulator runs it instead,
  // before anything was changed here.
  auto& gpr = ctx_->gpr;
  switch (site.fast) {
    case CalloutSite::FastPath::kCpuid: {
      // Intel SDM Vol. 2A CPUID: never faults in protected mode; flags unaffected.
      const uint32_t leaf = gpr[kEax];
      const CpuidEntry e = cpuid(leaf, gpr[kEcx]);
      if (!CpuModel::depends_on_index(leaf)) {
        // The same leaf next time is answered in translated code (Translator: inline CPUID).
        const size_t slot = BtContext::cpuid_slot(leaf);
        ctx_->cpuid_tag[slot] = 0u - leaf;
        ctx_->cpuid_answer[slot] = {e.eax, e.ebx, e.ecx, e.edx};
      }
      gpr[kEax] = e.eax;
      gpr[kEbx] = e.ebx;
      gpr[kEcx] = e.ecx;
      gpr[kEdx] = e.edx;
      break;
    }
    case CalloutSite::FastPath::kPortIo: {
      // Intel SDM Vol. 1 §19.5: CPL <= IOPL needs no I/O permission bitmap, except in
      // virtual-8086 mode, where the bitmap always decides (§19.5.2): the emulator checks it.
      const unsigned iopl = (ctx_->vflags & eflags::kIopl) >> 12;
      if (!port_io_ || s_.cpl() > iopl || (ctx_->vflags & eflags::kVm)) return 0;
      const unsigned size = site.access_size;
      IoAccess a;
      a.port = static_cast<uint16_t>(site.io_port >= 0 ? site.io_port : gpr[kEdx] & 0xffff);
      a.size = static_cast<uint8_t>(size);
      a.write = site.io_write;
      a.count = 1;
      uint8_t data[4] = {};
      a.data = data;
      if (a.write) std::memcpy(data, &gpr[kEax], size);
      const bool go_on = port_io_(a);
      ++io_in_engine_;
      if (!a.write) {
        uint32_t v = 0;
        std::memcpy(&v, data, size);
        const uint32_t keep = size == 4 ? 0 : ~((1u << (8 * size)) - 1);
        gpr[kEax] = (gpr[kEax] & keep) | v;
      }
      if (!go_on || physical_change_pending()) {
        // The machine asked to stop (debug exit, reset): the run loop sees it. Or the access
        // changed what physical addresses hold (a PAM write, the A20 gate), which only the
        // dispatcher may apply (apply_physical_changes): leave for it.
        if (!go_on) {
          direct_exit_ = Exit(ExitReason::kKicked);
          direct_exit_pending_ = true;
        }
        ctx_->eip = site.insn.next_eip;
        ctx_->exit_kind = ExitKind::kDirectCall;
        ++callouts_by_mnemonic_[site.insn.zi.mnemonic];
        ++direct_calls_;
        return kLeave;
      }
      break;
    }
    case CalloutSite::FastPath::kInvlpg: {
      // Intel SDM Vol. 2A INVLPG: #GP(0) above CPL 0 (the emulator raises it); the operand is
      // an address, never accessed.
      const ZydisDecodedOperand& m = site.insn.ops[0];
      const int seg = operand_segment(m);
      if (s_.cpl() != 0 || s_.seg[seg].base != 0) return 0;
      int base = gpr_index(m.mem.base), index = gpr_index(m.mem.index);
      uint32_t ea = static_cast<uint32_t>(m.mem.disp.has_displacement ? m.mem.disp.value : 0);
      if (base >= 0) ea += gpr[base];
      if (index >= 0) ea += gpr[index] * m.mem.scale;
      if (site.insn.zi.address_width == 16) ea &= 0xffff;
      on_invlpg(ea);
      break;
    }
    case CalloutSite::FastPath::kSystemCall:
    case CalloutSite::FastPath::kSoftwareInterrupt:
    case CalloutSite::FastPath::kIret: {
      // The emulator's own SYSENTER/SYSEXIT, INT n or IRET, without its general entry; then on
      // into the target's block, as a direct call's transfer goes.
      store_context();
      s_.eip = site.insn.eip;
      const bool done = site.fast == CalloutSite::FastPath::kSystemCall
                            ? system_.fast_system_call(s_, site.insn)
                        : site.fast == CalloutSite::FastPath::kSoftwareInterrupt
                            ? system_.fast_software_interrupt(s_, site.insn)
                            : system_.fast_iret(s_, site.insn);
      if (!done) return 0;
      ++callouts_by_mnemonic_[site.insn.zi.mnemonic];
      ++direct_calls_;
      const uint64_t next = transfer_to(key_flags(), &site);
      return next ? next : kLeave;
    }
    case CalloutSite::FastPath::kNone:
      return 0;
  }
  ++callouts_by_mnemonic_[site.insn.zi.mnemonic];
  ++direct_calls_;
  // A device may have raised an interrupt the guest can take now; a kick may be waiting.
  if (ctx_->kick_pending || (ctx_->vif && interrupts_.interrupt_pending())) {
    ctx_->eip = site.insn.next_eip;
    ctx_->exit_kind = ExitKind::kDirectCall;
    return kLeave;
  }
  return ctx_->resume;
}

uint64_t BtEngine::resume_block(const CalloutSite& site, uint32_t block_flags, uint64_t flushes,
                                const uint8_t* window, uint32_t space) {
  if (dispatcher_has_work() || cache_.flushes() != flushes) return leave_direct_call();
  // A mode, address space or window the rest of this block was not translated for (a kernel
  // entry loading FS, say): on in the block for the next instruction in the new mode, as the
  // dispatcher would go.
  const uint32_t flags = key_flags();
  if (!site.tb->valid || flags != block_flags || mmu_.window_base(s_.cpl()) != window ||
      mmu_.space_id() != space) {
    return transfer_to(flags);
  }
  load_context(flags);
  return ctx_->resume;
}

TranslationBlock* BtEngine::transfer_target(uint32_t flags, CalloutSite* site) {
  const uint32_t cs_base = s_.seg[kCs].base;
  if (site) {
    const CalloutSite::LastTarget& t = site->last_target;
    // (The flush count first: the block records live until a flush.)
    if (t.flushes == cache_.flushes() && t.eip == s_.eip && t.flags == flags &&
        t.cs_base == cs_base && t.space == mmu_.space_id() && t.tb->valid &&
        t.tb->page_count == 1) {
      uint64_t pa = 0;
      uint32_t error_code = 0;
      if (mmu_.translate(cs_base + s_.eip, fetch_access(), &pa, &error_code) &&
          (pa >> 12) == t.phys_page) {
        return t.tb;  // the same frame still: the block found there before
      }
    }
  }
  TranslationBlock* to = lookup(s_.eip, flags);
  if (site && to && to->page_count == 1 && !(flags & tb_flags::kSingleInstruction)) {
    site->last_target = {cache_.flushes(), s_.eip,       flags, cs_base,
                         mmu_.space_id(),  to->pages[0], to};
  }
  return to;
}

bool BtEngine::dispatcher_has_work() const {
  // A kick, an interrupt or NMI the guest can take now (or the one-instruction shadow before
  // it), TF, or a new code segment base.
  return ctx_->kick_pending || system_.interrupt_shadow ||
         ((s_.eflags & eflags::kIf) && interrupts_.interrupt_pending()) ||
         (!system_.nmi_blocked && interrupts_.nmi_pending()) || (s_.eflags & eflags::kTf) ||
         s_.seg[kCs].base != table_cs_base_;
}

uint64_t BtEngine::transfer_to(uint32_t flags, CalloutSite* site) {
  if (dispatcher_has_work()) return leave_direct_call();
  if (s_.eflags & eflags::kRf) {
    // IRET (or a task switch) loaded RF (Intel SDM Vol. 3B §17.3.1.1): it is cleared as the
    // next instruction starts; the dispatcher runs that one alone past a guest instruction
    // breakpoint.
    if (!guest_exec_breakpoints_.empty()) return leave_direct_call();
    s_.eflags &= ~eflags::kRf;
  }
  const uint32_t fpu_active = ctx_->fpu_active;
  TranslationBlock* to = transfer_target(flags, site);
  if (ctx_->fpu_active != fpu_active) {
    ctx_->fpu_active = fpu_active;  // the units hold the monitor's state: enter() swaps later
    fpu_activate_pending_ = true;
    return leave_direct_call();
  }
  if (!to) return leave_direct_call();  // a fetch fault: the dispatcher delivers it
  ++direct_transfers_;
  recent_blocks_[recent_next_++ % recent_blocks_.size()] = to->eip;
  load_context(flags);
  entering_ = to;  // a kick landing in the stub on the way there cuts this block's chains
  return reinterpret_cast<uint64_t>(to->entry);
}

uint64_t BtEngine::table_write_begin(CalloutSite& site) {
  const uint64_t flushes = cache_.flushes();
  ctx_->eip = site.insn.eip;
  store_context();
  // Nothing is done yet: leaving re-runs the instruction from the dispatcher. A store this
  // shape cannot make (across a page boundary, or not into RAM: MMIO, unassigned) runs there as
  // a one-instruction block, which has the ordinary shape (a host fault, the store run alone);
  // re-entering this block would come straight back here, for ever.
  const uint32_t linear = ctx_->table_linear;
  const unsigned size = site.access_size;
  if (ctx_->kick_pending) return leave_direct_call();
  if ((linear & 0xfff) + size > 0x1000) {
    single_step_eip_ = s_.eip;
    return leave_direct_call();
  }
  uint64_t phys = 0;
  try {
    if (!linear_memory_.translate(linear, true, s_.cpl() == 3, &phys) ||
        !memory_.contains(phys, size)) {
      single_step_eip_ = s_.eip;
      return leave_direct_call();
    }
  } catch (const GuestFault& f) {
    bool done = false;  // #PF: CR2 is set; the store never happened
    Exit e = raise_exception(f, done);
    return after_direct_exception(std::move(e), done);
  }
  mmu_.begin_table_write(static_cast<uint32_t>(phys), size);
  if (cache_.flushes() != flushes || !site.tb->valid) {
    mmu_.end_table_write();  // the store has not run: nothing changed, nothing to drop
    return leave_direct_call();
  }
  ctx_->table_offset = reinterpret_cast<uint64_t>(memory_.host_base() + phys) - ctx_->window_base;
  return ctx_->resume;  // registers, flags and the window are as the stub saved them
}

uint64_t BtEngine::table_write_end(CalloutSite& site) {
  const uint64_t flushes = cache_.flushes();
  const uint8_t* const window = reinterpret_cast<const uint8_t*>(ctx_->window_base);
  const uint32_t space = mmu_.space_id();
  ctx_->eip = site.insn.next_eip;
  store_context();
  mmu_.end_table_write();
  return resume_block(site, site.tb->key_flags, flushes, window, space);
}

uint64_t BtEngine::access_probe(CalloutSite& site) {
  const uint32_t linear = ctx_->probe_linear;
  const bool user = s_.cpl() == 3;
  ++access_probe_calls_;
  // A kick that landed in the monitor is the monitor's to see (the block's chains are intact): a
  // loop whose probe keeps calling here would never take its interrupt otherwise.
  if (ctx_->kick_pending) {
    ctx_->eip = site.insn.eip;
    store_context();
    return leave_direct_call();  // the dispatcher runs the instruction, probe and all, later
  }
  // The window of another CPL than the block's (a CPL 1 or 2 block): when the shadow maps the
  // page for the access after all, it runs as it is. (A prefetched page waiting for its first
  // use is mapped by the host fault path below.)
  if (mmu_.probe_passes(linear, site.probe_write, user)) return ctx_->resume;
  const uint64_t flushes = cache_.flushes();
  uint8_t* const window = mmu_.window_base(s_.cpl());
  const uint32_t space = mmu_.space_id();
  ctx_->eip = site.insn.eip;
  store_context();
  // The host fault the access would take, as the shadow MMU sees one.
  HostFault f;
  f.signal = SIGSEGV;
  f.code = SEGV_ACCERR;
  f.address = window + linear;
  f.write = site.probe_write;
  f.host_pc = reinterpret_cast<uint64_t>(site.tb->host_start);
  const ShadowMmu::Fault m = mmu_.handle_host_fault(f.address, f.write);
  if (m.kind == ShadowMmu::Fault::kRetry) {  // filled: the access runs now
    ++access_probe_fills_;
    return resume_block(site, site.tb->key_flags, flushes, window, space);
  }
  bool done = false;
  Exit e = handle_shadow_fault(m, f, done);
  if (m.kind == ShadowMmu::Fault::kPageFault) {
    ++access_probe_page_faults_;
    return after_direct_exception(std::move(e), done);  // on in the guest's #PF handler
  }
  // A store run alone, an MMIO access: the dispatcher takes it from the instruction.
  if (done) {
    direct_exit_ = std::move(e);
    direct_exit_pending_ = true;
  }
  return leave_direct_call();
}

uint64_t BtEngine::after_direct_exception(Exit e, bool done) {
  if (done) {  // the run ends (a triple fault, say): the dispatcher returns `e`
    direct_exit_ = std::move(e);
    direct_exit_pending_ = true;
    return leave_direct_call();
  }
  return transfer_to(key_flags());  // on in the handler's block
}

}  // namespace vmbt::bt
