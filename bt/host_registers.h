// How translated code holds the guest (docs/bt.md "Register pinning and flags"): the guest's
// eight 32-bit registers in the host registers of the same number, the context (BtContext) in
// r14, the window base in r15, its negation in r13 and the base plus 4 GiB in r12; r8-r11 are
// scratch.
#pragma once

#include <asmjit/x86.h>

#include <cstddef>
#include <cstdint>

namespace vmbt::bt {

/// Guest EAX..EDI (Gpr order) as host registers, 32-bit.
inline const asmjit::x86::Gp kGuestGpr32[8] = {asmjit::x86::eax, asmjit::x86::ecx, asmjit::x86::edx,
                                               asmjit::x86::ebx, asmjit::x86::esp, asmjit::x86::ebp,
                                               asmjit::x86::esi, asmjit::x86::edi};
/// The same registers, 64-bit (for addressing: the upper half is always zero).
inline const asmjit::x86::Gp kGuestGpr64[8] = {asmjit::x86::rax, asmjit::x86::rcx, asmjit::x86::rdx,
                                               asmjit::x86::rbx, asmjit::x86::rsp, asmjit::x86::rbp,
                                               asmjit::x86::rsi, asmjit::x86::rdi};
/// The same registers, 16-bit.
inline const asmjit::x86::Gp kGuestGpr16[8] = {asmjit::x86::ax, asmjit::x86::cx, asmjit::x86::dx,
                                               asmjit::x86::bx, asmjit::x86::sp, asmjit::x86::bp,
                                               asmjit::x86::si, asmjit::x86::di};

/// The BtContext field at byte `offset`, `size` bytes wide, through r14.
inline asmjit::x86::Mem ctx_field(size_t offset, unsigned size) {
  return asmjit::x86::Mem(asmjit::x86::r14, static_cast<int32_t>(offset), size);
}

}  // namespace vmbt::bt
