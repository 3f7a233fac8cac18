/*
 * real_mode.S - 16-bit code: a 16-bit protected-mode code segment (D=0), the switch to real-address
 * mode by clearing CR0.PE and a far jump (Intel SDM Vol. 3A §9.9.2), real mode itself (CS:IP with
 * base = selector * 16, 16-bit operand and address sizes, 66h/67h for 32-bit forms, the interrupt
 * vector table with INT n / IRET and a #DE, near and far CALL/RET, PUSH/POP on SS:SP, string
 * instructions, LOOP counting in CX and the A20 gate at port 0x92), and the switch back to
 * protected mode (§9.9.1). The 16-bit code runs at 0x7000 (copied there: real-mode code must sit
 * below 1 MiB) and leaves its results in a table the 32-bit code checks afterwards. Expected values: Intel SDM Vol. 2 and
 * Vol. 3A ch. 20; QEMU TCG prints the same.
 */
#include "guest.inc"

#define LOW_BASE 0x7000          /* where the 16-bit code is copied */
#define LOW_SEG (LOW_BASE >> 4)  /* its real-mode segment */
#define CODE16_SEL 0x18          /* 16-bit code segment, base LOW_BASE, limit 0xFFFF */
#define DATA16_SEL 0x20          /* 16-bit data segment, base 0, limit 0xFFFF */
#define RM(label) ((label) - low_start)  /* offset of a label in the copied code */
#define RESULT(n) (RM(results) + 4 * (n))

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT
  /* Copy the 16-bit code and its data below 1 MiB. */
  mov $low_start, %esi
  mov $LOW_BASE, %edi
  mov $(low_end - low_start), %ecx
  rep movsb
  mov %esp, saved_esp
  sidt saved_idt
  ljmp $CODE16_SEL, $RM(pm16_entry)
back_in_pm32:
  mov $DATA_SEL, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov saved_esp, %esp
  lidt saved_idt

#define R(n) (LOW_BASE + RESULT(n))
  mov R(0), %eax
  CHECK_EQ $0x5678, "16-bit protected mode: 16-bit add and operand wrap"
  mov R(1), %eax
  CHECK_EQ $0x0700, "real mode: cs after the far jump"
  mov R(2), %eax
  CHECK_EQ $0x1357, "real mode: [bx+si+disp] addressing"
  mov R(3), %eax
  CHECK_EQ $0x0002, "real mode: [bx+si] wraps at 64 KiB"
  mov R(4), %eax
  CHECK_EQ $0xbeef, "real mode: es override, base = selector * 16"
  mov R(5), %eax
  CHECK_EQ $0x12345678, "real mode: 32-bit operand (66h)"
  mov R(6), %eax
  CHECK_EQ $0xa5a5, "real mode: push/pop on ss:sp"
  mov R(7), %eax
  CHECK_EQ $0x0042, "real mode: near call/ret"
  mov R(8), %eax
  CHECK_EQ $0x0777, "real mode: far call/retf"
  mov R(9), %eax
  CHECK_EQ $0x0080, "real mode: int 0x80 through the ivt"
  mov R(10), %eax
  CHECK_EQ $0x0701, "real mode: cs and if pushed by int (cs:if)"
  mov R(11), %eax
  CHECK_EQ $0x0200, "real mode: iret restores if"
  mov R(12), %eax
  CHECK_EQ $0x0000, "real mode: #de through the ivt (vector 0)"
  mov R(13), %eax
  CHECK_EQ $0x0004, "real mode: rep movsb copies cx bytes"
  mov R(14), %eax
  CHECK_EQ $0x000a, "real mode: loop counts cx"
  mov R(15), %eax
  CHECK_EQ $0x6ff0, "real mode: sp back where it started"
  mov R(16), %eax
  CHECK_EQ $0x1234, "real mode: lea with 16-bit wrap"
  mov R(17), %eax
  CHECK_EQ $0x555500ff, "real mode: movzx to a 16-bit register"
  mov R(18), %eax
  CHECK_EQ $0x1234ff80, "real mode: cbw (not cwde)"
  mov R(19), %eax
  CHECK_EQ $0x1111, "real mode: a20 off wraps ffff:f010 to 0xf000"
  mov R(20), %eax
  CHECK_EQ $0x1111, "real mode: a20 on, ffff:f010 is above 1 mib"
  mov R(21), %eax
  CHECK_EQ $0x2222, "real mode: a20 on, the store above 1 mib reads back"
  mov 0x10f000, %eax
  CHECK_EQ $0x2222, "protected mode: it is at 0x10f000"
  CHECKS_DONE "real_mode"

.data
saved_esp: .long 0
saved_idt: .word 0
  .long 0

gdt:
  .quad 0
  .quad 0x00cf9b000000ffff  /* 0x08: 32-bit code */
  .quad 0x00cf93000000ffff  /* 0x10: 32-bit data */
  SEG_DESC LOW_BASE, 0xffff, 0x9b, 0x0  /* 0x18: 16-bit code, base 0x7000, byte granular */
  SEG_DESC 0, 0xffff, 0x93, 0x0         /* 0x20: 16-bit data, base 0 */
GDT_END

/* ---------------------------------------------------------------------------------------------
 * 16-bit code, run at LOW_BASE. Labels are used through RM(): offsets from low_start.
 * ------------------------------------------------------------------------------------------- */
  .p2align 4
low_start:
  .code16
pm16_entry:
  /* 16-bit protected mode: CS.D = 0, so 16-bit operands without a prefix. */
  mov $DATA16_SEL, %ax
  mov %ax, %ds
  mov %ax, %ss
  mov $0x6ff0, %sp
  mov $0xffff5000, %ebx  /* 66h: a 32-bit immediate */
  mov $0x0678, %ax
  add %bx, %ax           /* 0x5000 + 0x0678: 16 bits; EBX's upper half untouched */
  add $0x2000, %ax       /* 0x7678 */
  sub $0x2000, %ax       /* 0x5678 */
  mov %ax, %ds:(LOW_BASE + RESULT(0))
  /* To real mode: PE = 0, then a far jump loads a real-mode CS. */
  mov %cr0, %eax
  and $0xfffffffe, %eax
  mov %eax, %cr0
  ljmp $LOW_SEG, $RM(real_entry)

real_entry:
  mov $LOW_SEG, %ax
  mov %ax, %ds
  xor %ax, %ax
  mov %ax, %ss
  mov $0x6ff0, %sp
  lidt RM(ivt_desc)
  mov %cs, %ax
  mov %ax, RESULT(1)

  /* [bx+si+disp16] and its 64 KiB wrap. */
  mov $RM(scratch), %bx
  mov $2, %si
  movw $0x1357, 0(%bx,%si)
  mov 0(%bx,%si), %ax
  mov %ax, RESULT(2)
  mov $0xffff, %bx
  mov $RM(scratch) + 3, %si      /* bx + si = 0x1_0000 + scratch + 2: wraps to scratch + 2 */
  movw $0x0002, %ax
  mov %ax, (%bx,%si)
  mov RM(scratch) + 2, %ax
  mov %ax, RESULT(3)

  /* ES override: segment 0x0800 reaches 0x8000 + offset. */
  mov $0x0800, %ax
  mov %ax, %es
  movw $0xbeef, %es:0x10
  xor %ax, %ax
  mov %ax, %es
  mov %es:0x8010, %ax
  mov %ax, RESULT(4)

  /* 32-bit operand in real mode. */
  mov $0x12345678, %eax
  mov %eax, RESULT(5)

  /* PUSH/POP on SS:SP. */
  push $0xa5a5
  pop %ax
  mov %ax, RESULT(6)

  /* Near CALL/RET. */
  call near_func
  mov %ax, RESULT(7)

  /* Far CALL/RETF. */
  lcall $LOW_SEG, $RM(far_func)
  mov %ax, RESULT(8)

  /* INT 0x80 through IVT entry 0x80 (installed here), IRET. */
  xor %ax, %ax
  mov %ax, %es
  movw $RM(int80_handler), %es:(0x80 * 4)
  movw $LOW_SEG, %es:(0x80 * 4 + 2)
  movw $RM(de_handler), %es:(0 * 4)
  movw $LOW_SEG, %es:(0 * 4 + 2)
  sti
  int $0x80
  pushf
  pop %ax
  and $0x0200, %ax
  mov %ax, RESULT(11)
  cli

  /* #DE: the handler records the vector and skips the 2-byte DIV. */
  movw $0xffff, RESULT(12)
  xor %bl, %bl
  mov $1, %ax
  div %bl

  /* REP MOVSB with 16-bit addressing: DS:SI -> ES:DI, CX bytes. */
  mov %ds, %ax
  mov %ax, %es
  mov $RM(scratch), %si
  mov $RM(scratch) + 16, %di
  movl $0x04030201, RM(scratch)
  movl $0, RM(scratch) + 16
  mov $4, %cx
  cld
  rep movsb
  mov RM(scratch) + 19, %al
  xor %ah, %ah
  mov %ax, RESULT(13)

  /* LOOP counts in CX (16-bit address size). */
  mov $10, %cx
  xor %dx, %dx
1:
  inc %dx
  loop 1b
  mov %dx, RESULT(14)
  mov %sp, RESULT(15)

  /* LEA wraps its 16-bit effective address. */
  mov $0xf000, %bx
  lea 0x2234(%bx), %ax
  mov %ax, RESULT(16)

  /* MOVZX and CBW with 16-bit operands leave EAX's upper half alone. */
  mov $0x80ff, %cx
  mov $0x5555aaaa, %eax
  movzx %cl, %ax   /* 0x555500ff */
  mov %eax, RESULT(17)
  mov $0x12340080, %eax
  cbw              /* AX = 0xff80; CWDE would change the upper half */
  mov %eax, RESULT(18)

  /* The A20 gate (port 0x92 bit 1): off, FFFF:F010 (0x10F000) wraps to 0x0F000; on, it is
   * memory above 1 MiB. */
  xor %ax, %ax
  mov %ax, %fs                   /* FS = 0: the low 64 KiB */
  mov $0xffff, %ax
  mov %ax, %es                   /* ES = FFFF: base 0xFFFF0 */
  movw $0, %fs:0xf000
  in $0x92, %al
  and $0xfd, %al
  out %al, $0x92                 /* A20 off */
  movw $0x1111, %es:0xf010
  mov %fs:0xf000, %ax
  mov %ax, RESULT(19)            /* the store wrapped: 0x1111 */
  in $0x92, %al
  or $0x02, %al
  out %al, $0x92                 /* A20 on */
  movw $0x2222, %es:0xf010
  mov %fs:0xf000, %ax
  mov %ax, RESULT(20)            /* 0x1111 still: this store went above 1 MiB */
  mov %es:0xf010, %ax
  mov %ax, RESULT(21)            /* 0x2222 */

  /* Back to protected mode: PE = 1, then a 32-bit far jump (66h) to the 32-bit code. */
  lidt RM(ivt_desc)
  mov %cr0, %eax
  or $1, %eax
  mov %eax, %cr0
  .byte 0x66, 0xea
  .long back_in_pm32
  .word CODE_SEL

near_func:
  mov $0x42, %ax
  ret

far_func:
  mov $0x777, %ax
  lret

int80_handler:
  /* The frame: IP, CS, FLAGS at SS:SP. */
  push %bp
  mov %sp, %bp
  mov 4(%bp), %ax       /* CS */
  mov 6(%bp), %dx       /* FLAGS */
  and $0x0200, %dx
  shr $9, %dx
  or %dx, %ax
  mov %ax, RESULT(10)
  pushf
  pop %ax
  and $0x0200, %ax      /* IF cleared by the delivery: 0 */
  or $0x80, %ax
  mov %ax, RESULT(9)
  pop %bp
  iret

de_handler:
  push %bp
  mov %sp, %bp
  addw $2, 2(%bp)       /* skip DIV BL (F6 F3) */
  movw $0, RESULT(12)
  pop %bp
  iret

  .p2align 2
ivt_desc:
  .word 0x3ff
  .long 0
  .p2align 2
results:
  .fill 32, 4, 0
scratch:
  .fill 32, 1, 0
  .code32
low_end:
