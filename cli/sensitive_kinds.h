// What kind of sensitive or privileged instruction a callout is, for `vmbt trace`'s summary. The
// class comes from bt's instruction policy (bt/insn_policy.h), the one place that decides it;
// docs/sensitive-instructions.md has the reasoning for each class.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "bt/insn_policy.h"
#include "cli/x86_disassembler.h"

namespace vmbt {

/// The classes of instructions bt hands to the monitor.
using SensitiveClass = bt::policy::Sensitivity;

/// A short name of the class ("sensitive, unprivileged", ...).
inline const char* class_name(SensitiveClass c) {
  return bt::policy::sensitivity_name(c);
}

/// The kind of an instruction: its mnemonic, refined where the mnemonic alone hides what it does
/// ("mov to cr3", "mov from cr0", "mov to sreg", "push sreg", "jmp far", "ret far"), and its class.
struct CalloutKind {
  std::string kind;
  SensitiveClass cls = SensitiveClass::kEmulated;
};

/// The kind of the 32-bit instruction at the start of `bytes` (`size` bytes available), which
/// Capstone decoded as `d`. An instruction the policy finds not sensitive (an ordinary one the
/// monitor ran through a segment that needs checks) is kEmulated.
CalloutKind classify_instruction(const DecodedInstruction& d, const uint8_t* bytes, size_t size);

}  // namespace vmbt
