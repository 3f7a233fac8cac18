/* spin: prints "spinning" and loops forever with interrupts off, until vmbt's --timeout ends the
 * run: for tests that look at a running vmbt process (tests/e2e/sandbox.sh). */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  mov $msg, %esi
  call puts
1:
  pause
  jmp 1b

.section .rodata
msg: .asciz "spinning\n"
