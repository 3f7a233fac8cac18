// The one place that decides how bt runs each guest instruction: which instructions are
// sensitive and why, which ISA extensions the CPU model executes, and, per translation mode, the
// code shape the translator emits (docs/bt.md "Code shapes", docs/sensitive-instructions.md).
// The translator, the system emulator, the engine's callout path and `vmbt trace` all read it.
#pragma once

#include <Zydis/Zydis.h>

#include <array>
#include <cstdint>

#include "bt/guest_insn.h"
#include "bt/translation_block.h"

namespace vmbt::bt {
class CodeFetcher;
}

namespace vmbt::bt::policy {

/// Why an instruction cannot run as the guest wrote it (Robin & Irvine, USENIX Security 2000, for
/// the sensitive unprivileged ones; Intel SDM Vol. 3A §2.8 and §5.9 for the privileged ones).
enum class Sensitivity : uint8_t {
  kNone,                   ///< runs in translated code (copied, or re-encoded for the window)
  kSensitiveUnprivileged,  ///< Robin & Irvine's 17 (and IRET): no trap at CPL 3, wrong result
  kIoplSensitive,          ///< CLI, STI, IN, OUT, INS, OUTS: #GP when CPL > IOPL
  kPrivileged,             ///< #GP outside CPL 0 (LGDT, MOV CRn, HLT, WRMSR, INVLPG, ...)
  kVirtualized,            ///< unprivileged, results the monitor defines (CPUID, RDTSC, SYSENTER)
  kEmulated,               ///< not sensitive: no 64-bit encoding (PUSHA, BCD, ...) or #UD
};

/// A short name of the class ("sensitive, unprivileged", ...), as `vmbt trace` prints it.
const char* sensitivity_name(Sensitivity s);

/// The class of a decoded 32-bit or 16-bit instruction: by mnemonic, and by operand for MOV to
/// and from segment, control and debug registers and for far transfers.
Sensitivity sensitivity(const ZydisDecodedInstruction& insn, const ZydisDecodedOperand* ops);

/// Instructions not recognized in real-address mode nor in virtual-8086 mode, #UD there (Intel
/// SDM Vol. 2: "Real-Address Mode Exceptions: #UD The ... instruction is not recognized in
/// real-address mode", and the same under "Virtual-8086 Mode Exceptions"): LAR, LSL, VERR,
/// VERW, SLDT, STR, LLDT, LTR, ARPL.
bool protected_mode_only(ZydisMnemonic m);

/// Whether the vmbt CPU model (vmm/cpu_model.h, CPUID.1:EDX) has ISA extension `ext`: the base
/// set, x87 (FPU), MMX, SSE, SSE2, CLFLUSH (CLFSH) and PAUSE (a hint NOP before SSE2).
bool in_cpu_model(ZydisISAExt ext);

/// Whether the CPU model executes this instruction: its extensions, plus the encodings that older
/// processors execute as something else (TZCNT as REP BSF, LZCNT as REP BSR, ENDBR32/64 as hint
/// NOPs). Anything else, and every VEX/EVEX/XOP encoding, raises #UD (Intel SDM Vol. 2A §2.x).
bool model_executes(const ZydisDecodedInstruction& insn);

/// Whether a sensitive instruction, executed by the monitor, normally continues at the next
/// instruction (so a block goes on after its direct call) rather than transferring control.
bool falls_through(const ZydisDecodedInstruction& insn);

/// The monitor's fast path for a direct call's instruction (CalloutSite::FastPath): CPUID,
/// INVLPG, SYSENTER/SYSEXIT, INT n/INT3, IRETD, and IN/OUT with a register operand (not the
/// string forms), whose common case needs only the registers and the I/O bus. Sets site.fast and,
/// for port I/O, io_write, io_port and access_size.
void choose_fast_path(CalloutSite& site);

/// How the translator emits one instruction (docs/bt.md "Code shapes").
enum class Shape : uint8_t {
  kIdent,        ///< copied, re-encoded only where 64-bit mode reads it differently
  kNop,          ///< nothing emitted: ENDBR32/64, a hint NOP on a CPU without CET (the model)
  kMemory,       ///< lea r8d, [guest EA] (+ segment base); the instruction on [r15 + r8]
  kMoffs,        ///< MOV AL/AX/EAX <-> moffs (A0-A3): the same, with no ModRM to rewrite
  kLea,          ///< LEA: the guest address computed into the destination
  kStack,        ///< PUSH/POP/LEAVE through [r15 + esp] on a flat stack
  kString,       ///< MOVS/STOS/LODS/SCAS/CMPS on window pointers in ESI/EDI
  kJump,         ///< near JMP: a chained direct exit, or the indirect-branch table
  kCall,         ///< near CALL with a 32-bit operand size
  kReturn,       ///< near RET with a 32-bit operand size
  kCondBranch,   ///< Jcc, JCXZ/JECXZ, LOOPcc
  kCpl0Flags,    ///< CLI/STI/PUSHFD/POPFD at CPL 0 on the context's virtual IF
  kPushSreg,     ///< PUSH Sreg (32-bit) on a flat stack from the context's selector copy
  kMaskmov,      ///< MASKMOVQ/MASKMOVDQU through a flat DS on a window pointer in EDI
  kDivide,       ///< DIV/IDIV after an inline zero-divisor check (#DE by a direct call)
  kTableStore,   ///< a store into traced page tables between two direct calls (adaptive)
  kMonitorCall,  ///< a direct call: the monitor runs it in place (CalloutSite)
  kMonitorExit,  ///< a callout: the block ends and the dispatcher runs it
};

/// The shape of instruction `in` in a block translated for mode `key_flags` (tb_flags).
/// `fetcher.writes_page_tables(linear)` is asked only for a store that could take kTableStore.
Shape decide(const GuestInsn& in, uint32_t key_flags, const CodeFetcher& fetcher, uint32_t linear);

/// An access an access probe checks before an instruction runs (adaptive translation, docs/bt.md
/// "Access probes"): where its linear address comes from, and whether it writes.
struct ProbedAccess {
  enum class Address : uint8_t {
    kOperand,      ///< the explicit memory operand (ModRM or moffs), its segment base included
    kSource,       ///< DS:ESI of a string instruction (flat)
    kDestination,  ///< ES:EDI of a string instruction (flat)
    kPush,         ///< ESP minus the operand size, on a flat 32-bit stack
    kStackTop,     ///< ESP, on a flat 32-bit stack
  } address = Address::kOperand;
  bool write = false;
};

/// The access probes of one instruction, in the order the processor makes the accesses (Intel
/// SDM Vol. 2: a CALL through memory reads its target before it pushes; MOVS reads DS:ESI before
/// it writes ES:EDI). A string instruction's first element only; `rep`: none when a REP prefix
/// finds ECX zero (no iteration, no access).
struct AccessProbes {
  std::array<ProbedAccess, 2> access{};
  uint8_t count = 0;
  bool rep = false;
};

/// The access probes of `in`, translated as `shape` for mode `key_flags`: none unless it kept
/// taking page faults (`fetcher.probes_access(linear)`, asked only for an instruction that could
/// be probed) and direct calls and paging are on. Only accesses the instruction makes whenever it
/// runs are probed (not a hint such as PREFETCH or a ModRM NOP, whose page may be absent; not
/// VEX/EVEX, whose masked forms may skip one; not x87, whose data pointer the probe would lose).
AccessProbes access_probes(const GuestInsn& in, Shape shape, uint32_t key_flags,
                           const CodeFetcher& fetcher, uint32_t linear);

/// The memory operands of a string instruction (MOVS, CMPS, STOS, LODS, SCAS; Intel SDM Vol. 2):
/// whether it uses DS:ESI (the source) and ES:EDI (the destination), and writes the destination.
struct StringOperands {
  bool source = false;
  bool destination = false;
  bool writes_destination = false;
};
StringOperands string_operands(uint8_t primary_opcode);

/// Whether a block ends after an instruction of this shape (a transfer, or the monitor taking
/// over); kMonitorCall ends it when the instruction does not fall through.
bool ends_block(Shape shape, const ZydisDecodedInstruction& insn);

}  // namespace vmbt::bt::policy
