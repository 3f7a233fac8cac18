/* address_size_branches: branches with an address-size prefix (0x67) in 32-bit code (issue 17,
 * defect 6). Intel SDM Vol. 2A Jcc/JMP: a relative branch has no memory operand, so the prefix
 * changes nothing; JCXZ and LOOPcc with a 16-bit address size test and count CX, not ECX
 * (Vol. 2A JCXZ, LOOP/LOOPcc), leaving ECX's upper half alone. One line per check: "ok <what>"
 * or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every check passed (status 1). */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  /* 67 74 rel8: JZ taken and not taken. */
  xor %eax, %eax
  cmp %eax, %eax
  .byte 0x67
  jz 1f
  mov $1, %eax
1:
  CHECK_EQ $0, "addr16 jz taken"
  mov $7, %eax
  test %eax, %eax
  .byte 0x67
  jz 1f
  mov $2, %eax
1:
  CHECK_EQ $2, "addr16 jz not taken"
  /* 67 0f 85 rel32: JNZ near. */
  mov $1, %eax
  test %eax, %eax
  .byte 0x67, 0x0f, 0x85
  .long 1f - 2f
2:
  mov $3, %eax
1:
  CHECK_EQ $1, "addr16 jnz rel32 taken"
  /* 67 eb rel8: JMP short. */
  mov $4, %eax
  .byte 0x67
  jmp 1f
  mov $5, %eax
1:
  CHECK_EQ $4, "addr16 jmp short"
  /* A loop of addr16 Jcc: 1000 iterations. */
  xor %eax, %eax
  mov $1000, %ecx
3:
  inc %eax
  dec %ecx
  .byte 0x67
  jnz 3b
  CHECK_EQ $1000, "addr16 jnz loop count"
  /* 67 e3: JCXZ tests CX. */
  mov $0x00010000, %ecx
  mov $6, %eax
  .byte 0x67, 0xe3, 1f - 2f
2:
  mov $7, %eax
1:
  CHECK_EQ $6, "jcxz: cx zero, ecx not: taken"
  /* 67 e2: LOOP decrements CX only. */
  mov $0x00010001, %ecx
  mov $8, %eax
  .byte 0x67, 0xe2, 1f - 2f
2:
  mov $9, %eax
1:
  CHECK_EQ $9, "loop with cx 1: not taken"
  mov %ecx, %eax
  CHECK_EQ $0x00010000, "loop with cx 1: ecx after"
  /* 66 C3 and 66 FF /2: near RET and CALL with a 16-bit operand size (Intel SDM Vol. 2B RET,
   * Vol. 2A CALL) pop and push IP, 16 bits, and clear EIP's upper half: so they reach only the
   * first 64 KiB, where a stub goes back through ESI. */
  movl $0x9066e6ff, 0x8000      /* 0x8000: jmp *%esi */
  movl $0xe6ff5a66, 0x8010      /* 0x8010: pop %dx (16-bit); jmp *%esi */
  mov %esp, %ebx
  mov $1f, %esi
  pushw $0x8000
  .byte 0x66, 0xc3              /* retw: EIP = 0x8000 */
1:
  mov %esp, %eax
  sub %ebx, %eax
  CHECK_EQ $0, "o16 ret: pops 2 bytes"
  mov $1f, %esi
  mov $0xffff8010, %eax         /* only AX counts: the target is 0x8010 */
  .byte 0x66, 0xff, 0xd0        /* callw *%ax: pushes IP (2 bytes) */
2:
1:
  movzwl %dx, %ecx              /* what the stub popped (CHECK_EQ clobbers EDX) */
  mov %esp, %eax
  sub %ebx, %eax
  CHECK_EQ $0, "o16 call: pushes 2 bytes (popped by the stub)"
  mov $2b, %eax
  and $0xffff, %eax
  sub %ecx, %eax
  CHECK_EQ $0, "o16 call: pushes the low 16 bits of the return address"
  CHECKS_DONE "address_size_branches"
