/* rep_outsb: sends a whole line to COM1's THR with one `rep outsb` (string port I/O, DF = 0),
 * then exits with code 0 (vmbt status 1). No LSR polling: the UART model accepts every byte. */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  cld
  mov $msg, %esi
  mov $(msg_end - msg), %ecx
  mov $COM1, %dx
  rep outsb
  /* ESI and ECX must have advanced past the whole string. */
  cmp $msg_end, %esi
  jne 1f
  test %ecx, %ecx
  jne 1f
  mov $done, %esi
  call puts
  EXIT(0)
1:
  mov $bad, %esi
  call puts
  EXIT(1)

.section .rodata
msg:
  .ascii "rep outsb sent this whole 58-byte line in one instruction\n"
msg_end:
done:
  .asciz "ok registers after rep outsb\n"
bad:
  .asciz "FAIL registers after rep outsb\n"
