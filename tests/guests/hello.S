/* hello: prints one line on COM1 and exits through isa-debug-exit with code 0 (vmbt status 1). */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  mov $msg, %esi
  call puts
  EXIT(0)

.section .rodata
msg:
  .asciz "Hello from vmbt guest\n"
