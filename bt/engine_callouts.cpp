// Callouts: instructions the dispatcher hands to the monitor (the legacy group, FPU traps,
// masked stores, the system emulator), and the exceptions and step results they end in.
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

namespace {

/// The monitor's accesses for an instruction it executes, logged for the guest's data
/// breakpoints (all of a legacy instruction's accesses are its own: Intel SDM Vol. 3B §17.2.5).
class LoggingMemory final : public LinearMemory {
 public:
  LoggingMemory(LinearMemory& memory, std::vector<DataAccess>& log) : memory_(memory), log_(log) {}
  void read(uint32_t linear, void* dst, unsigned size, bool user) override {
    memory_.read(linear, dst, size, user);
    log_.push_back({linear, size, false});
  }
  void write(uint32_t linear, const void* src, unsigned size, bool user) override {
    memory_.write(linear, src, size, user);
    log_.push_back({linear, size, true});
  }

 private:
  LinearMemory& memory_;
  std::vector<DataAccess>& log_;
};

}  // namespace

Exit BtEngine::finish_step(const StepResult& r, bool& done) {
  switch (r.kind) {
    case StepKind::kDone:
      return Exit();
    case StepKind::kIo: {
      if (port_io_) {
        // Devices answer at once: perform the access on the run loop's I/O bus here, without
        // an exit, and complete the instruction (the kvm engine reaches the same bus by exits).
        // (r.io.data is the emulator's buffer: the device reads or fills it in place.)
        IoAccess access;
        access.port = r.io.port;
        access.size = r.io.size;
        access.write = r.io.write;
        access.count = r.io.count;
        access.data = r.io.data;
        const bool go_on = port_io_(access);
        io_in_engine_ += r.io.count;
        Exit e = finish_step(system_.finish_io(s_, r.io), done);
        if (done) return e;
        if (!go_on) {
          done = true;
          return Exit(ExitReason::kKicked);  // the run loop sees the machine's exit request
        }
        return Exit();
      }
      io_pending_ = true;
      io_step_ = r;
      Exit e(ExitReason::kIo);
      e.io.port = io_step_.io.port;
      e.io.size = io_step_.io.size;
      e.io.write = io_step_.io.write;
      e.io.count = io_step_.io.count;
      e.io.data = io_step_.io.data;
      done = true;
      return e;
    }
    case StepKind::kHalt:
      done = true;
      return Exit(ExitReason::kHalt);
    case StepKind::kShutdown:
      done = true;
      return Exit(ExitReason::kShutdown,
                  fmt::format("guest shutdown (triple fault) at {}{}{}", describe_eip(),
                              r.message.empty() ? "" : ": ", r.message));
    case StepKind::kUnsupported:
      done = true;
      return Exit(ExitReason::kInternalError,
                  r.message.empty()
                      ? fmt::format("bt cannot run the instruction at {}", describe_eip())
                      : r.message);
  }
  return Exit();
}

bool BtEngine::decode_at_eip(uint8_t (&bytes)[16], ZydisDecodedInstruction& insn,
                             ZydisDecodedOperand* ops) {
  try {
    linear_memory_.read(s_.seg[kCs].base + s_.eip, bytes, sizeof bytes, s_.cpl() == 3);
  } catch (const GuestFault&) {
    // The bytes past the page may be unmapped; the emulator fetches exactly and faults itself.
  }
  // The code segment's default size (CS.D) picks the decoding, as the CPU's does.
  const bool code32 = s_.seg[kCs].db;
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, code32 ? ZYDIS_MACHINE_MODE_LEGACY_32 : ZYDIS_MACHINE_MODE_LEGACY_16,
                   code32 ? ZYDIS_STACK_WIDTH_32 : ZYDIS_STACK_WIDTH_16);
  return ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, bytes, sizeof bytes, &insn, ops));
}

Exit BtEngine::raise_exception(uint8_t vector, bool& done) {
  ++exceptions_by_vector_[vector];
  return finish_step(system_.raise(s_, vector), done);
}

Exit BtEngine::raise_exception(uint8_t vector, uint32_t error_code, bool& done) {
  ++exceptions_by_vector_[vector];
  return finish_step(system_.raise(s_, vector, true, error_code), done);
}

Exit BtEngine::raise_exception(const GuestFault& f, bool& done) {
  return f.has_error_code ? raise_exception(f.vector, f.error_code, done)
                          : raise_exception(f.vector, done);
}

Exit BtEngine::handle_callout(bool& done) {
  uint8_t bytes[16] = {};
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  bool decoded = decode_at_eip(bytes, insn, ops);
  if (decoded) {
    ++callouts_by_mnemonic_[insn.mnemonic];
  } else {
    ++undecodable_callouts_;
  }
  if (callout_observer_) {
    CalloutEvent ev;
    ev.eip = s_.eip;
    ev.linear = s_.seg[kCs].base + s_.eip;
    ev.cpl = s_.cpl();
    ev.length = decoded ? insn.length : 1;
    std::memcpy(ev.bytes, bytes, sizeof ev.bytes);
    ev.mnemonic = decoded ? ZydisMnemonicGetString(insn.mnemonic) : "(invalid)";
    callout_observer_(ev);
  }
  // With the guest's data breakpoints, the accesses the instruction made through its operands,
  // once it completed (a fault empties the log), are traps run() delivers after it.
  const bool logging = guest_data_breakpoints_;
  if (logging) data_log_.clear();
  Exit e = run_callout(decoded ? &insn : nullptr, ops, nullptr, done);
  if (guest_breakpoints_changed_) update_guest_breakpoints();
  if (logging) {
    uint32_t hits = 0;
    for (const DataAccess& a : data_log_) hits |= dr::data_hits(s_.dr, a.linear, a.size, a.write);
    data_log_.clear();
    if (dr::fires(s_.dr[7], hits)) callout_hits_ |= hits;
  }
  return e;
}

Exit BtEngine::run_callout(const ZydisDecodedInstruction* decoded_insn,
                           const ZydisDecodedOperand* ops, const sys::Insn* predecoded,
                           bool& done) {
  const bool decoded = decoded_insn != nullptr;
  // (A reference to a static, not `decoded ? *decoded_insn : ZydisDecodedInstruction{}`: that
  // conditional is a prvalue, a 300-byte copy on every callout.)
  static const ZydisDecodedInstruction kNoInstruction{};
  const ZydisDecodedInstruction& insn = decoded ? *decoded_insn : kNoInstruction;
  // A direct call's instruction is known: only the legacy group goes to execute_legacy.
  if (decoded && (!predecoded || is_legacy_instruction(insn.mnemonic))) {
    LoggingMemory logged(linear_memory_, data_log_);
    LegacyOutcome legacy = execute_legacy(
        s_, insn, ops,
        guest_data_breakpoints_ ? static_cast<LinearMemory&>(logged) : linear_memory_);
    if (legacy.result == LegacyResult::kDone) return Exit();
    data_log_.clear();  // not done: nothing the guest's data breakpoints see
    if (legacy.result == LegacyResult::kFault) {
      return raise_exception(legacy.fault, done);
    }
  }
  if (decoded) {
    // CR0.EM/TS/MP and CR4.OSFXSR (Intel SDM Vol. 3A Table 2-2, §13.1): the translator sends
    // the affected instructions here only when one of them is set.
    bool em = s_.cr0 & cr0::kEm, ts = s_.cr0 & cr0::kTs, mp = s_.cr0 & cr0::kMp;
    bool osfxsr = s_.cr4 & cr4::kOsfxsr;
    int vector = -1;
    switch (fpu_class(insn)) {
      case FpuClass::kWait:
        if (ts && mp) {
          vector = exc::kNm;
        } else {
          s_.eip += insn.length;  // nothing to wait for: the guest's x87 runs synchronously
          return Exit();
        }
        break;
      case FpuClass::kX87:
      case FpuClass::kFxsr:
        if (em || ts) vector = exc::kNm;
        break;
      case FpuClass::kMmx:
        vector = em ? exc::kUd : ts ? exc::kNm : -1;
        break;
      case FpuClass::kSse:
        vector = (em || !osfxsr) ? exc::kUd : ts ? exc::kNm : -1;
        break;
      case FpuClass::kNone:
        break;
    }
    if (vector >= 0) {
      return raise_exception(vector, done);
    }
  }
  if (decoded && is_masked_store(insn.mnemonic)) {
    // Only a direct call has its instruction predecoded.
    const LegacyOutcome m = run_masked_store(insn, ops, predecoded != nullptr);
    if (m.result == LegacyResult::kDone) return Exit();
    if (m.result == LegacyResult::kFault) return raise_exception(m.fault, done);
  }
  StepResult r = predecoded ? system_.execute(s_, *predecoded) : system_.execute(s_);
  if (r.kind == StepKind::kUnsupported && decoded &&
      (segments_used(insn, ops) & restricted_segments(s_))) {
    // An ordinary instruction through a segment that needs checks: check its accesses here,
    // then run it alone, untouched (Intel SDM Vol. 3A §5.3-5.4).
    if (auto f = check_instruction(s_, insn, ops)) {
      return raise_exception(f->vector, f->error_code, done);
    }
    single_step_eip_ = s_.eip;
    single_step_unchecked_ = true;
    return Exit();
  }
  if (r.kind == StepKind::kUnsupported && decoded && !policy::model_executes(insn)) {
    return raise_exception(exc::kUd, done);  // not in the vmbt CPU model: #UD
  }
  if (r.kind == StepKind::kUnsupported && r.message.empty()) {
    r.message =
        fmt::format("bt does not implement '{}' at {}",
                    decoded ? ZydisMnemonicGetString(insn.mnemonic) : "(invalid)", describe_eip());
  }
  return finish_step(r, done);
}

LegacyOutcome BtEngine::run_masked_store(const ZydisDecodedInstruction& insn,
                                         const ZydisDecodedOperand* ops, bool in_direct_call) {
  // The guest's vector registers are in guest_fx, except during a direct call from code that
  // uses them: then x87/MMX are in the units and XMM0-7 in the context's copy (the stub saved
  // them, and loads them back from there on the way out).
  if (!(in_direct_call && ctx_->fpu_live)) {
    return execute_masked_store(s_, insn, ops, ctx_->guest_fx, linear_memory_);
  }
  // The units as they are (the monitor's XMM and MXCSR, the guest's x87/MMX), and the guest's
  // whole view for the instruction.
  alignas(16) std::array<uint8_t, 512> units{};
  asm volatile("fxsave %0" : "=m"(units));
  alignas(16) std::array<uint8_t, 512> guest = units;
  std::memcpy(guest.data() + 160, ctx_->guest_xmm.data(), ctx_->guest_xmm.size());
  const LegacyOutcome out = execute_masked_store(s_, insn, ops, guest, linear_memory_);
  // Back into the units: only the x87/MMX part changed (MASKMOVQ's TOP and tags, the registers
  // turned with TOP); the XMM registers and MXCSR get back exactly what they held, so the
  // compiler's own use of them across this is undisturbed.
  std::memcpy(units.data(), guest.data(), 4);                 // FCW, FSW
  units[4] = guest[4];                                        // abridged FTW
  std::memcpy(units.data() + 32, guest.data() + 32, 8 * 16);  // ST0-7 / MM0-7
  asm volatile("fxrstor %0"
               :
               : "m"(units)
               : "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
  return out;
}

}  // namespace vmbt::bt
