/* maskmov: MASKMOVQ and MASKMOVDQU (Intel SDM Vol. 2B), the byte-masked stores through the
 * implicit DS:EDI: each byte of the source whose mask byte has its top bit set is written, the
 * others are left alone. With a DS override too. "ok <what>" per check; exits with 0 when every
 * check passed (status 1). */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  /* SSE on, as an OS that uses it sets it up (Intel SDM Vol. 3A §13.1). */
  mov %cr0, %eax
  and $~0x4, %eax                    /* EM = 0 */
  or $0x2, %eax                      /* MP = 1 */
  mov %eax, %cr0
  mov %cr4, %eax
  or $0x600, %eax                    /* OSFXSR, OSXMMEXCPT */
  mov %eax, %cr4

  /* MASKMOVQ: bytes 0, 2, 7 of mm0 go to [EDI]. */
  movl $0x11111111, buffer
  movl $0x11111111, buffer + 4
  movq data8, %mm0
  movq mask8, %mm1
  mov $buffer, %edi
  maskmovq %mm1, %mm0
  mov buffer, %eax
  CHECK_EQ $0x11331155, "maskmovq: low dword"
  mov buffer + 4, %eax
  CHECK_EQ $0x88111111, "maskmovq: high dword"
  mov %edi, %eax
  CHECK_EQ $buffer, "maskmovq: EDI unchanged"

  /* The same through a DS override prefix. */
  movl $0, buffer
  movl $0, buffer + 4
  .byte 0x3e
  maskmovq %mm1, %mm0
  mov buffer, %eax
  CHECK_EQ $0x00330055, "maskmovq ds: low dword"

  /* MASKMOVDQU: the odd bytes of xmm0. */
  movdqu data16, %xmm0
  movdqu mask16, %xmm1
  pxor %xmm2, %xmm2
  movdqu %xmm2, buffer
  mov $buffer, %edi
  maskmovdqu %xmm1, %xmm0
  mov buffer, %eax
  CHECK_EQ $0x04000200, "maskmovdqu: dword 0"
  mov buffer + 12, %eax
  CHECK_EQ $0x10000e00, "maskmovdqu: dword 3"
  emms
  CHECKS_DONE "maskmov"

.section .rodata
.balign 16
data8:
  .byte 0x55, 0x66, 0x33, 0x44, 0x22, 0x99, 0x77, 0x88
mask8:
  .byte 0x80, 0x00, 0xff, 0x7f, 0x00, 0x01, 0x00, 0x80
.balign 16
data16:
  .byte 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
mask16:
  .byte 0, 0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0, 0x80

.data
.balign 16
buffer:
  .fill 16, 1, 0
