/* softint: software interrupts through a real IDT (Intel SDM Vol. 3A §6.12): INT3 (#BP, a trap:
 * the saved EIP is the next instruction) and INT 0x80 (a Linux i386 system-call style gate whose
 * handler changes EAX). Each handler checks its interrupt frame (saved EIP and CS, EFLAGS.IF = 0
 * under the interrupt gate) and returns with IRET. Exits with 0 when every check passed (status 1).
 * kvm-pvm cannot emulate INT n (KVM_EXIT_INTERNAL_ERROR), hence the skip in softint.expect. */
#include "guest.inc"

#define GATE_INTR32 0x8e00 /* present, DPL 0, 32-bit interrupt gate */

/* Fills IDT entry `vec` with an interrupt gate to `handler`. Clobbers EAX. */
.macro SET_GATE vec, handler
  mov $\handler, %eax
  mov %ax, idt + \vec * 8
  shr $16, %eax
  mov %ax, idt + \vec * 8 + 6
  movw $CODE_SEL, idt + \vec * 8 + 2
  movw $GATE_INTR32, idt + \vec * 8 + 4
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  SET_GATE 3, int3_handler
  SET_GATE 0x80, int80_handler
  lidt idt_desc

  int3
after_int3:
  mov $msg_back_int3, %esi
  call puts

  mov $41, %eax
  int $0x80
after_int80:
  mov $42, %edx
  mov $name_int80_eax, %esi
  call report

  cmpl $0, failures
  jne 1f
  EXIT(0)
1:
  EXIT(1)

int3_handler:
  pusha
  lea 32(%esp), %ebp                /* the interrupt frame, above the PUSHA area */
  mov $msg_in_int3, %esi
  call puts
  mov $after_int3, %edi
  call check_frame
  popa
  iret

int80_handler:
  pusha
  lea 32(%esp), %ebp
  mov $msg_in_int80, %esi
  call puts
  mov $after_int80, %edi
  call check_frame
  popa
  inc %eax                          /* the "system call" result */
  iret

/* check_frame: EBP = interrupt frame (EIP, CS, EFLAGS), EDI = expected EIP.
 * Clobbers EAX, EDX, ESI. */
check_frame:
  mov 0(%ebp), %eax
  mov %edi, %edx
  mov $name_eip, %esi
  call report
  mov 4(%ebp), %eax
  and $0xffff, %eax
  mov $CODE_SEL, %edx
  mov $name_cs, %esi
  call report
  pushf
  pop %eax
  and $0x200, %eax                  /* EFLAGS.IF */
  xor %edx, %edx
  mov $name_if, %esi
  jmp report

/* report: EAX = value read, EDX = value wanted, ESI = name of the check. */
report:
  push %esi
  cmp %edx, %eax
  jne 1f
  mov $msg_ok, %esi
  call puts
  pop %esi
  call puts
  call newline
  ret
1:
  incl failures
  mov $msg_failed, %esi
  call puts
  pop %esi
  call puts
  mov $msg_got, %esi
  call puts
  call print_hex32
  mov $msg_want, %esi
  call puts
  mov %edx, %eax
  call print_hex32
  call newline
  ret

.data
  .p2align 2
failures:
  .long 0
  .p2align 3
idt:
  .skip 256 * 8
idt_desc:
  .word 256 * 8 - 1
  .long idt

.section .rodata
msg_ok: .asciz "ok "
msg_failed: .asciz "FAIL "
msg_got: .asciz " got "
msg_want: .asciz " want "
msg_in_int3: .asciz "in int3 handler\n"
msg_back_int3: .asciz "back after int3\n"
msg_in_int80: .asciz "in int 0x80 handler\n"
name_eip: .asciz "saved eip"
name_cs: .asciz "saved cs"
name_if: .asciz "if clear in handler"
name_int80_eax: .asciz "int 0x80 result in eax"
