/* halt: prints a line, then HLT with interrupts off: the run must end with status 0 ("guest
 * halted"), not hang. */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  mov $msg, %esi
  call puts
  cli
  hlt
  /* Not reached when the monitor ends the run at HLT with IF = 0. */
  mov $msg_resumed, %esi
  call puts
  EXIT(1)

.section .rodata
msg: .asciz "halting\n"
msg_resumed: .asciz "FAIL resumed after cli; hlt\n"
