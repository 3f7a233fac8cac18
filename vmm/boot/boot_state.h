// The vCPU state a boot loader hands to a 32-bit protected-mode kernel.
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

}  // namespace vmbt
