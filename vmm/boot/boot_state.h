// The vCPU state a boot loader hands to a 32-bit protected-mode kernel, and the processor's
// reset state a firmware boot starts in.
#pragma once

#include <cstdint>

#include "vmm/cpu_state.h"

namespace vmbt {

/// Code and data selectors of the boot state. Only the hidden parts (descriptor caches) are valid:
/// GDTR is empty, so a guest must load its own GDT before it reloads any segment register
/// (Multiboot v1 spec §3.2: "the OS image must create its own GDT as soon as it needs to").
constexpr uint16_t kBootCodeSelector = 0x10;
constexpr uint16_t kBootDataSelector = 0x18;

/// The Multiboot v1 machine state (spec §3.2 "Machine state") with EIP = `entry_eip`:
/// - CS: flat 32-bit execute/read code (base 0, limit 4 GiB - 1, type 0xb, DPL 0, D/B=1, G=1),
///   selector kBootCodeSelector;
/// - DS, ES, FS, GS, SS: flat 32-bit read/write data (type 0x3), selector kBootDataSelector;
/// - CR0 = PE | ET (paging off), EFLAGS = 0x2 (IF = 0, VM = 0), CR3 = CR4 = EFER = 0;
/// - TR: a present 32-bit busy TSS cache (type 0xb, base 0, limit 0x67, selector 0), because
///   VT-x refuses VM entry with an unusable TR (Intel SDM Vol. 3C §26.3.1.2);
/// - LDTR unusable; GDTR and IDTR base 0 limit 0; all GPRs 0 (ESP is undefined per the spec: the
///   guest sets up its own stack).
/// The loader sets EAX/EBX (Multiboot magic and info address) on top of this.
VcpuState flat_protected_mode_state(uint32_t entry_eip);

/// The processor's state after RESET (Intel SDM Vol. 3A §9.1.1, Table 9-1), where a PC's
/// firmware starts (F000:FFF0, the reset vector 16 bytes below 4 GiB):
/// - CS: selector 0xF000, base 0xFFFF0000, limit 0xFFFF, present, execute/read, accessed (type
///   0xb), 16-bit; EIP = 0xFFF0;
/// - DS, ES, FS, GS, SS: selector 0, base 0, limit 0xFFFF, present, read/write, accessed;
/// - GDTR, IDTR: base 0, limit 0xFFFF; LDTR: present LDT (type 2), TR: present busy TSS (type
///   0xb, what VT-x accepts), both selector 0, base 0, limit 0xFFFF;
/// - EFLAGS = 0x2; CR0 = 0x60000010 (CD, NW, ET); CR2 = CR3 = CR4 = EFER = 0;
/// - EDX = `cpuid_signature` (the processor's CPUID.1:EAX: type, family, model, stepping), the
///   other GPRs 0; DR0-DR3 = 0, DR6 = 0xFFFF0FF0, DR7 = 0x400;
/// - x87 FPU control word 0x0040 (power-up), MXCSR 0x1F80.
VcpuState reset_state(uint32_t cpuid_signature);

}  // namespace vmbt
