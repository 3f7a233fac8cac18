// Host signals in translated code: kicks, host faults turned into shadow fills, guest
// exceptions or MMIO accesses (docs/shadow-mmu.md "Faults"), and the MMIO step.
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

void BtEngine::kick(const void* signal_context) {
  ctx_->kick_pending = 1;
  // Every indirect exit leaves from now on (translated code reads the table pointer at each);
  // direct chains are cut below for the block that runs. The dispatcher's next entry selects
  // the real tables again (select_tables).
  ctx_->indirect_table = tables_.kick_slots();
  if (!signal_context) return;
  auto* uc = static_cast<ucontext_t*>(const_cast<void*>(signal_context));
  auto rip = reinterpret_cast<uint8_t*>(uc->uc_mcontext.gregs[REG_RIP]);
  if (rip >= stubs_.begin && rip < stubs_.end) {
    // Between enter() and the block's first instruction: cut the block about to run.
    if (entering_ && !kicked_) {
      cache_.unlink_exits(entering_);
      kicked_ = entering_;
    }
    return;
  }
  if (!cache_.contains_host(rip)) return;  // in the monitor: it checks kick_pending itself
  TranslationBlock* tb = cache_.find_by_host(rip);
  if (!tb) return;
  for (const TranslationBlock::TableExit& t : tb->table_exits) {
    if (rip >= tb->host_start + t.lookup_start && rip < tb->host_start + t.lookup_end) {
      // In a table exit's lookup, which may have read the table pointer already: leave through
      // the stub (r9d holds the target).
      uc->uc_mcontext.gregs[REG_RIP] = reinterpret_cast<greg_t>(stubs_.indirect_exit);
      return;
    }
  }
  if (!kicked_) {
    cache_.unlink_exits(tb);
    kicked_ = tb;
  }
}

bool BtEngine::handle_host_fault(int signal, void* siginfo, void* ucontext) {
  auto* uc = static_cast<ucontext_t*>(ucontext);
  auto* info = static_cast<siginfo_t*>(siginfo);
  auto rip = reinterpret_cast<uint8_t*>(uc->uc_mcontext.gregs[REG_RIP]);
  if (!cache_.contains_host(rip) || (rip >= stubs_.begin && rip < stubs_.end)) return false;
  TranslationBlock* tb = cache_.find_by_host(rip);
  if (!tb || tb->insns.empty()) return false;
  uint32_t off = static_cast<uint32_t>(rip - tb->host_start);
  auto it = std::upper_bound(tb->insns.begin(), tb->insns.end(), off,
                             [](uint32_t o, const InsnMap& m) { return o < m.host_offset; });
  if (it == tb->insns.begin()) return false;
  const InsnMap& insn = *std::prev(it);

  greg_t* g = uc->uc_mcontext.gregs;
  const int host_reg[8] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI};
  for (unsigned i = 0; i < 8; ++i) ctx_->gpr[i] = static_cast<uint32_t>(g[host_reg[i]]);
  // ESI/EDI were window pointers around a string instruction (flat segments only).
  if (insn.fixup.si_biased) {
    ctx_->gpr[kEsi] = static_cast<uint32_t>(static_cast<uint64_t>(g[REG_RSI]) - ctx_->window_base);
  }
  if (insn.fixup.di_biased) {
    ctx_->gpr[kEdi] = static_cast<uint32_t>(static_cast<uint64_t>(g[REG_RDI]) - ctx_->window_base);
  }
  ctx_->host_flags = static_cast<uint32_t>(g[REG_EFL]) & (kHostFlagBits | eflags::kFixed1);
  ctx_->eip = insn.guest_eip;
  ctx_->exit_kind = ExitKind::kFault;

  fault_ = HostFault{};
  fault_.signal = signal;
  fault_.host_pc = reinterpret_cast<uint64_t>(rip);
  fault_.code = info->si_code;
  // An SSE instruction's floating-point exception is #XM; x87's is #MF. The host's MXCSR status
  // bits tell them apart: an unmasked SSE exception leaves its flag set.
  fault_.sse = signal == SIGFPE && uc->uc_mcontext.fpregs &&
               (uc->uc_mcontext.fpregs->mxcsr & 0x3f & ~(uc->uc_mcontext.fpregs->mxcsr >> 7));
  if (signal == SIGSEGV || signal == SIGBUS) {
    fault_.address = info->si_addr;
    fault_.write = (g[REG_ERR] & 2) != 0;
  }
  g[REG_RIP] = reinterpret_cast<greg_t>(stubs_.exit_after_fault);
  g[REG_RSP] = static_cast<greg_t>(ctx_->host_rsp);
  ++host_faults_;
  return true;
}

Exit BtEngine::handle_fault(bool& done) {
  HostFault f = fault_;
  if (f.signal == SIGFPE) {
    // Integer divide errors are #DE; x87 and SSE exceptions (only unmasked ones trap) are #MF
    // and #XM (Intel SDM Vol. 3A §6.15: vectors 0, 16, 19).
    uint8_t vector = exc::kDe;
    if (f.code != FPE_INTDIV && f.code != FPE_INTOVF) vector = f.sse ? exc::kXm : exc::kMf;
    if (vector == exc::kXm && !(s_.cr4 & cr4::kOsxmmexcpt))
      vector = exc::kUd;  // without OSXMMEXCPT
    return raise_exception(vector, done);
  }
  if (f.signal == SIGILL) {  // an instruction this host cannot run: what the guest sees is #UD
    return raise_exception(exc::kUd, done);
  }
  if (f.signal == SIGBUS && f.code == BUS_ADRALN) {
    return raise_exception(exc::kAc, 0, done);  // #AC(0)
  }
  if (f.signal == SIGSEGV || f.signal == SIGBUS) {
    const ShadowMmu::Fault m = mmu_.handle_host_fault(f.address, f.write);
    if (m.kind == ShadowMmu::Fault::kRetry || m.kind == ShadowMmu::Fault::kPageFault) {
      note_faulting_access(f);
    }
    return handle_shadow_fault(m, f, done);
  }
  return unexpected_host_signal(f, done);
}

void BtEngine::note_faulting_access(const HostFault& f) {
  if (callout_observer_) return;  // no direct calls then
  const uint32_t eip = s_.seg[kCs].base + s_.eip;
  TranslationBlock* tb = cache_.find_by_host(reinterpret_cast<void*>(f.host_pc));
  if (auto it = probed_accesses_.find(eip); it != probed_accesses_.end()) {
    // Probed already: a block translated before then lacks the probe and goes (once: its next
    // translation has it, or the policy gives this access none, a shape without probes). A
    // later fault is one a probe lets through (the next page of a string, say).
    if (!tb || tb->serial >= it->second) return;
  } else {
    if (probed_accesses_.size() >= kMaxProbedAccesses) return;
    if (access_faults_.size() >= kMaxFaultCounts) access_faults_.clear();
    if (++access_faults_[eip] < kProbeAfterFaults) return;
    access_faults_.erase(eip);
    probed_accesses_.emplace(eip, translator_.stats().blocks);
  }
  if (tb) {  // translated again, with the probe
    cache_.discard(tb);
    forget_block(tb);
  }
}

Exit BtEngine::unexpected_host_signal(const HostFault& f, bool& done) {
  done = true;
  return Exit(ExitReason::kInternalError,
              fmt::format("bt: unexpected host signal {} ({}) in translated code at {} (host PC "
                          "{:#x})",
                          f.signal, strsignal(f.signal), describe_eip(), f.host_pc));
}

Exit BtEngine::handle_shadow_fault(const ShadowMmu::Fault& m, const HostFault& f, bool& done) {
  switch (m.kind) {
    case ShadowMmu::Fault::kRetry:
      return Exit();
    case ShadowMmu::Fault::kSingleStep:
      // Run the store alone: a block re-translated from a code page would protect it again
      // (and a traced page table would be traced again) before the store completes.
      single_step_eip_ = s_.eip;
      single_step_code_write_ = m.code_write;
      // An instruction the monitor already checked (a segment that needs checks) stays
      // checked when it runs alone again: re-checking would step it back here forever.
      if (faulted_unchecked(f)) single_step_unchecked_ = true;
      if (m.watched) {
        watched_access_ = watched_access_at(m.linear, f.write);
        if (guest_data_breakpoints_) start_rep_iteration();
      }
      if (m.table_write && !m.code_write && !callout_observer_) {
        // Adaptive translation: from now on this instruction stores into page tables through
        // the monitor, without a fault; its block is translated again with that shape.
        table_writers_.insert(s_.seg[kCs].base + s_.eip);
        if (TranslationBlock* tb = cache_.find_by_host(reinterpret_cast<void*>(f.host_pc))) {
          cache_.discard(tb);
          forget_block(tb);
        }
      }
      return Exit();
    case ShadowMmu::Fault::kMmio:
      return start_mmio(m, faulted_unchecked(f), done);
    case ShadowMmu::Fault::kPageFault:
      s_.cr2 = m.linear;
      return raise_exception(exc::kPf, m.error_code, done);
    case ShadowMmu::Fault::kNotWindow:
      if (f.code == SI_KERNEL) {
        // A general-protection fault of the guest instruction itself (e.g. a misaligned
        // MOVAPS): the guest's #GP(0) (Intel SDM Vol. 3A §6.15, vector 13).
        return raise_exception(exc::kGp, 0, done);
      }
      break;
  }
  return unexpected_host_signal(f, done);
}

Exit BtEngine::deliver_fetch_fault(bool& done) {
  uint64_t pa = 0;
  uint32_t error_code = 0;
  uint32_t eip = s_.seg[kCs].base + s_.eip;
  // The first instruction byte, or the rest of the instruction on the next page.
  for (uint32_t probe : {eip, (eip | 0xfff) + 1}) {
    if (!mmu_.translate(probe, fetch_access(), &pa, &error_code)) {
      s_.cr2 = probe;
      return raise_exception(exc::kPf, error_code, done);
    }
  }
  // Nothing behind the address: a PC's bus reads all ones there, FF FF is an invalid opcode, so
  // the CPU raises #UD (Intel SDM Vol. 2A, opcode map: FF /7 is reserved) at the instruction.
  ++fetches_outside_ram_;
  last_fetch_outside_ram_ = eip;
  return raise_exception(exc::kUd, done);
}

Exit BtEngine::mmio_exit(bool write) {
  Exit e(ExitReason::kMmio);
  e.mmio.gpa = mmio_.gpa;
  e.mmio.size = static_cast<uint8_t>(mmio_.size);
  e.mmio.write = write;
  e.mmio.data = mmio_data_.data();
  return e;
}

Access BtEngine::fetch_access() const {
  return Access{false, s_.cpl() == 3, true};
}

bool BtEngine::faulted_unchecked(const HostFault& f) {
  const TranslationBlock* from = cache_.find_by_host(reinterpret_cast<void*>(f.host_pc));
  return from && (from->key_flags & tb_flags::kSegUnchecked);
}

Exit BtEngine::start_mmio(const ShadowMmu::Fault& fault, bool unchecked, bool& done) {
  // The access's size and direction come from the instruction's memory operand.
  uint8_t bytes[16] = {};
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  const ZydisDecodedOperand* mem = nullptr;
  if (decode_at_eip(bytes, insn, ops)) {
    for (unsigned i = 0; i < insn.operand_count; ++i) {
      if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[i].mem.type == ZYDIS_MEMOP_TYPE_MEM) {
        mem = mem ? nullptr : &ops[i];  // exactly one memory operand
        if (!mem) break;
      }
    }
  }
  unsigned size = mem ? mem->size / 8 : 0;
  if (!mem || size == 0 || size > 8 || (fault.linear & 0xfff) + size > 0x1000 ||
      insn.meta.category == ZYDIS_CATEGORY_STRINGOP) {
    done = true;
    return Exit(ExitReason::kInternalError,
                fmt::format("bt cannot emulate this MMIO access (guest-physical {:#x}) at {}: one "
                            "load or store of 1-8 bytes is supported",
                            fault.phys, describe_eip()));
  }
  mmio_.gpa = fault.phys;
  mmio_.linear = fault.linear;
  mmio_.size = size;
  mmio_.unchecked = unchecked;
  mmio_.reads = mem->actions & ZYDIS_OPERAND_ACTION_MASK_READ;
  mmio_.writes = mem->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
  mmio_data_.fill(0);
  if (mmio_.reads) {  // ask the device first; the instruction runs when its answer is in
    mmio_.stage = PendingMmio::kAwaitingRead;
    done = true;
    return mmio_exit(false);
  }
  mmu_.map_scratch(mmio_.linear, true);
  mmio_.stage = PendingMmio::kStepping;
  single_step_eip_ = s_.eip;
  single_step_unchecked_ = mmio_.unchecked;
  return Exit();
}

}  // namespace vmbt::bt
