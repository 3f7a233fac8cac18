// What kind of sensitive or privileged instruction a callout is, for `vmbt trace`'s summary
// (docs/sensitive-instructions.md has the reasoning for each class).
#pragma once

#include <string>

#include "cli/x86_disassembler.h"

namespace vmbt {

/// The classes of instructions bt turns into callouts.
enum class SensitiveClass {
  kSensitiveUnprivileged,  ///< Robin & Irvine's 17: run at CPL 3 without trapping, but wrongly
  kIoplSensitive,          ///< CLI, STI, IN, OUT, INS, OUTS: trap when CPL > IOPL
  kPrivileged,             ///< #GP outside CPL 0 (LGDT, MOV CRn, HLT, WRMSR, INVLPG, ...)
  kVirtualized,            ///< unprivileged, results the monitor defines (CPUID, RDTSC, SYSENTER)
  kEmulated,               ///< not sensitive: no 64-bit encoding (PUSHA, BCD...) or invalid
};

/// A short name of the class ("sensitive, unprivileged", ...).
const char* class_name(SensitiveClass c);

/// The kind of an instruction: its mnemonic, refined where the mnemonic alone hides what it does
/// ("mov to cr3", "mov from cr0", "mov to sreg", "push sreg", "jmp far", "ret far"), and its class.
struct CalloutKind {
  std::string kind;
  SensitiveClass cls = SensitiveClass::kEmulated;
};

CalloutKind classify_instruction(const DecodedInstruction& d);

}  // namespace vmbt
