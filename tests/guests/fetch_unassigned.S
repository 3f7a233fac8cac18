/* fetch_unassigned: code fetched from a physical address with no RAM, ROM or device behind it
 * (issue 17, defect 10). On a PC the bus answers such a read with all-ones bytes; FF FF is an
 * invalid opcode (Intel SDM Vol. 2A, one-byte opcode map: FF /7 is reserved), so the CPU raises
 * #UD with the saved EIP at the target, and the guest's handler goes on. Checked for a JMP and a
 * CALL through a register to 0xC0000000 (far above the guest's RAM, below every device). One
 * line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every
 * check passed (status 1). */
#include "guest.inc"

#define NOWHERE 0xc0000000

MULTIBOOT_HEADER

GUEST_ENTRY
  call exc_init
  EXC_ARM 1f
  mov $NOWHERE, %eax
  jmp *%eax
1:
  EXC_CHECK "jmp to unassigned memory", 6, NOERR, NOWHERE
  EXC_ARM 1f
  mov $NOWHERE + 0x123, %eax
  call *%eax
1:
  EXC_CHECK "call to unassigned memory", 6, NOERR, NOWHERE + 0x123
  mov exc_count, %eax
  CHECK_EQ $2, "exceptions in all"
  CHECKS_DONE "fetch_unassigned"

EXCEPTION_SUPPORT
