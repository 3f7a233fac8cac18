/* maskmov: MASKMOVQ and MASKMOVDQU (Intel SDM Vol. 2B), the byte-masked stores through the
 * implicit DS:EDI: each byte of the source whose mask byte has its top bit set is written, the
 * others are left alone. With a DS override, an FS override (a segment whose base is not 0: the
 * store goes to FS.base + EDI) and a 0x67 prefix (16-bit addressing: DS:DI, EDI's upper half
 * ignored). "ok <what>" per check; exits with 0 when every check passed (status 1). */
#include "guest.inc"

#define buffer16 0x6000

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

  /* FS override: FS's base is 0x1000, so FS:(buffer - 0x1000) is buffer. */
  LOAD_GDT
  call exc_init
  mov $0x18, %ax
  mov %ax, %fs
  movl $0, buffer
  movl $0, buffer + 4
  mov $(buffer - 0x1000), %edi
  .byte 0x64
  maskmovq %mm1, %mm0
  mov buffer, %eax
  CHECK_EQ $0x00330055, "maskmovq fs: low dword"
  mov buffer + 4, %eax
  CHECK_EQ $0x88000000, "maskmovq fs: high dword"
  mov %edi, %eax
  CHECK_EQ $(buffer - 0x1000), "maskmovq fs: EDI unchanged"

  /* Through the monitor with the x87 stack pushed (TOP = 7): MMn is still physical register n,
   * and afterwards TOP is 0 again (an MMX instruction, Intel SDM Vol. 1 §9.5.1). */
  movl $0, buffer
  mov $(buffer - 0x1000), %edi
  fld1
  .byte 0x64
  maskmovq %mm1, %mm0
  mov buffer, %eax
  CHECK_EQ $0x00330055, "maskmovq fs after fld1: low dword"
  fnstsw %ax
  shr $11, %eax
  and $7, %eax
  CHECK_EQ $0, "maskmovq fs: x87 TOP"

  /* A selected byte past FS's limit (FS 0x20: base 0x1000, limit 0xfff): #GP(0) (Intel SDM
   * Vol. 2B MASKMOVQ, "Protected Mode Exceptions"; QEMU TCG does not check this limit). */
  mov $0x20, %ax
  mov %ax, %fs
  mov $0xffc, %edi
  EXC_ARM 2f
1:
  .byte 0x64
  maskmovq %mm1, %mm0
2:
  EXC_CHECK "maskmovq past fs limit", 13, 0, 1b
  mov $0x18, %ax
  mov %ax, %fs

  /* An unmasked x87 exception pending (FSW.ES, here a zero divide with ZM clear): MASKMOVQ, an
   * MMX instruction, raises #MF before it stores (CR0.NE=1: native #MF delivery; Intel SDM
   * Vol. 2B MASKMOVQ; QEMU TCG does not check this either). */
  mov %cr0, %eax
  or $0x20, %eax                     /* NE */
  mov %eax, %cr0
  fninit
  fnstcw fcw_saved
  movw $0x037b, fcw_zm_clear         /* the default 0x037f with ZM (bit 2) cleared */
  fldcw fcw_zm_clear
  fldz
  fld1
  fdiv %st(1), %st                   /* ST0 = 1 / 0: ZE, pending (ES set) */
  mov $(buffer - 0x1000), %edi
  EXC_ARM 4f
3:
  .byte 0x64
  maskmovq %mm1, %mm0
4:
  EXC_CHECK "maskmovq with x87 exception pending", 16, NOERR, 3b
  fnclex
  fninit
  movq data8, %mm0                   /* fninit emptied the MMX registers' tags, not their values */
  movq mask8, %mm1

  /* 0x67: DS:DI; EDI's upper half is not part of the address (buffer16: conventional memory
   * below 64 KiB, where no loader puts anything). */
  movl $0, buffer16
  movl $0, buffer16 + 4
  mov $(0x12340000 + buffer16), %edi
  .byte 0x67
  maskmovq %mm1, %mm0
  mov buffer16, %eax
  CHECK_EQ $0x00330055, "maskmovq addr16: low dword"
  mov %edi, %eax
  CHECK_EQ $(0x12340000 + buffer16), "maskmovq addr16: EDI unchanged"

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

  /* MASKMOVDQU through FS (the monitor reads XMM0 and XMM1). */
  pxor %xmm2, %xmm2
  movdqu %xmm2, buffer
  mov $(buffer - 0x1000), %edi
  .byte 0x64
  maskmovdqu %xmm1, %xmm0
  mov buffer + 12, %eax
  CHECK_EQ $0x10000e00, "maskmovdqu fs: dword 3"
  emms
  CHECKS_DONE "maskmov"

EXCEPTION_SUPPORT

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
fcw_saved: .word 0
fcw_zm_clear: .word 0
.balign 8
gdt:
  GDT_FLAT_ENTRIES
  SEG_DESC 0x1000, 0xfffff, 0x93, 0xc  /* 0x18: data, base 0x1000 */
  SEG_DESC 0x1000, 0x00fff, 0x93, 0x4  /* 0x20: data, base 0x1000, limit 0xfff (bytes) */
GDT_END
.balign 16
buffer:
  .fill 16, 1, 0

