// Alternate signal stacks: translated code runs with the guest's ESP in the host RSP.
#pragma once

namespace vmbt {

/// Gives the calling thread an alternate signal stack (sigaltstack) if it has none. Every signal
/// handler vmbt installs uses SA_ONSTACK: a signal that arrives while bt's translated code runs
/// finds a guest value in RSP, and the kernel must not push the signal frame there.
void ensure_signal_alt_stack();

/// Clears EFLAGS.AC. Call first thing in a signal handler: signal delivery keeps the AC flag, which
/// bt's translated code sets for a CPL3 guest that asked for alignment checking (its #AC), and
/// host code must not run with it (any unaligned access would raise SIGBUS).
inline void clear_alignment_check() {
  asm volatile("pushfq\n\tandq $~0x40000, (%%rsp)\n\tpopfq" ::: "memory", "cc");
}

}  // namespace vmbt
