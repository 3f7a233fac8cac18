// Alternate signal stacks: translated code runs with the guest's ESP in the host RSP.
#pragma once

namespace vmbt {

/// Gives the calling thread an alternate signal stack (sigaltstack) if it has none. Every signal
/// handler vmbt installs uses SA_ONSTACK: a signal that arrives while bt's translated code runs
/// finds a guest value in RSP, and the kernel must not push the signal frame there.
void ensure_signal_alt_stack();

}  // namespace vmbt
