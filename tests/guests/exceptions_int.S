/* exceptions_int: software interrupts and the exceptions of instructions that kvm-pvm cannot
 * emulate (it stops with KVM_EXIT_INTERNAL_ERROR instead of raising them), at CPL 0 through an
 * IDT of DPL-0 gates (EXCEPTION_SUPPORT in guest.inc; IRET returns). One line per check: "ok
 * <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every check passed (status 1).
 *
 * Covered (Intel SDM Vol. 2A INT n/INTO/INT3/INT1, BOUND, UD, LEA, CMPXCHG8B; Vol. 3A §6.12-6.15):
 *  - INT3 (0xCC) and INT 3 (0xCD 0x03): #BP, a trap: saved EIP = next instruction.
 *  - INTO: #OF (trap) when OF = 1; nothing when OF = 0.
 *  - INT1 (0xF1): #DB, saved EIP = next instruction.
 *  - BOUND: #BR (a fault: saved EIP = BOUND) below and above the signed bounds; nothing inside.
 *  - INT 0x80 through a trap gate keeps EFLAGS.IF, through an interrupt gate clears it.
 *  - INT 0x40 through a not-present gate: #NP(0x40*8+2) (IDT bit, EXT = 0 for INT n), a fault;
 *    INT 0x41 through an all-zero IDT entry (type 0 is not a gate type): #GP(0x41*8+2).
 *  - INT 0x50 beyond the IDT limit: #GP(0x50*8+2).
 *  - #UD through a not-present gate: #NP(6*8+2+1): IDT and EXT (the event was an exception);
 *    #UD is benign, so the #NP is delivered, not #DF (Vol. 3A Table 6-5).
 *  - #UD from UD1 (0F B9 /r), LEA with a register source, CMPXCHG8B with a register operand. */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  call exc_init
  mov $0xff, %al                    /* every PIC IRQ masked: IF = 1 below is safe */
  outb %al, $0x21
  outb %al, $0xa1

  call test_bp
  call test_of
  call test_int1
  call test_br
  call test_int80
  call test_idt_faults
  call test_ud

  CHECKS_DONE "exceptions_int"

test_bp:
  EXC_ARM 1f
  int3
0:
  nop
1:
  EXC_CHECK "#BP int3", 3, NOERR, 0b

  EXC_ARM 1f
  int $3
0:
  nop
1:
  EXC_CHECK "#BP int 3", 3, NOERR, 0b
  ret

test_of:
  mov $0x7f, %al
  add $1, %al                       /* OF = 1 */
  EXC_ARM 1f
  into
0:
  nop
1:
  EXC_CHECK "#OF into with of=1", 4, NOERR, 0b

  mov $0x7e, %al
  add $1, %al                       /* OF = 0 */
  EXC_ARM 1f
  into
1:
  EXC_NONE "into with of=0"
  ret

test_int1:
  EXC_ARM 1f
  .byte 0xf1                        /* int1 (icebp) */
0:
  nop
1:
  EXC_CHECK "#DB int1", 1, NOERR, 0b
  ret

test_br:
  mov $20, %eax
  EXC_ARM 1f
  bound %eax, bounds_10_20
1:
  EXC_NONE "bound 20 in [10, 20]"

  mov $21, %eax
  EXC_ARM 1f
0:
  bound %eax, bounds_10_20
1:
  EXC_CHECK "#BR bound 21 above [10, 20]", 5, NOERR, 0b

  mov $9, %eax
  EXC_ARM 1f
0:
  bound %eax, bounds_10_20
1:
  EXC_CHECK "#BR bound 9 below [10, 20]", 5, NOERR, 0b

  mov $-1, %eax                     /* the bounds are signed: -1 < 0 */
  EXC_ARM 1f
0:
  bound %eax, bounds_0_10
1:
  EXC_CHECK "#BR bound -1 below [0, 10] (signed)", 5, NOERR, 0b
  ret

/* Vol. 3A §6.12.1.3: through an interrupt gate the processor clears IF, through a trap gate it
 * does not. exc_hflags is EFLAGS inside the handler; exc_eflags the pushed image. */
test_int80:
  mov $0x80, %eax
  mov $exc_stub_0x80, %ebx
  mov $GATE_TRAP32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
  sti
  EXC_ARM 1f
  int $0x80
0:
  nop
1:
  cli
  EXC_CHECK "int 0x80 trap gate", 0x80, NOERR, 0b
  mov exc_hflags, %eax
  and $0x200, %eax
  CHECK_EQ $0x200, "int 0x80 trap gate keeps if"
  mov exc_eflags, %eax
  and $0x200, %eax
  CHECK_EQ $0x200, "int 0x80 trap gate pushed if"

  mov $0x80, %eax
  mov $exc_stub_0x80, %ebx
  mov $GATE_INTR32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
  sti
  EXC_ARM 1f
  int $0x80
0:
  nop
1:
  pushf
  cli
  EXC_CHECK "int 0x80 interrupt gate", 0x80, NOERR, 0b
  mov exc_hflags, %eax
  and $0x200, %eax
  CHECK_EQ $0, "int 0x80 interrupt gate clears if"
  pop %eax
  and $0x200, %eax
  CHECK_EQ $0x200, "int 0x80 iret restores if"
  ret

/* Vol. 3A §6.13: error code bit 0 EXT, bit 1 IDT, bits 15:3 the vector (IDT descriptor). */
test_idt_faults:
  mov $0x40, %eax
  mov $exc_stub_0x80, %ebx
  mov $(GATE_INTR32 & 0x7fff), %ecx /* an interrupt gate with P = 0 */
  mov $CODE_SEL, %edx
  call exc_set_gate
  EXC_ARM 1f
0:
  int $0x40
1:
  EXC_CHECK "#NP int 0x40 through not-present gate", 11, 0x40*8+2, 0b

  EXC_ARM 1f                        /* gate 0x41 is all zeros: type 0 is not a gate */
0:
  int $0x41
1:
  EXC_CHECK "#GP int 0x41 through a descriptor that is not a gate", 13, 0x41*8+2, 0b

  lidt idt_desc_64                  /* vectors 0-63 only */
  EXC_ARM 1f
0:
  int $0x50
1:
  lidt exc_idt_desc
  EXC_CHECK "#GP int 0x50 beyond the idt limit", 13, 0x50*8+2, 0b

  andb $0x7f, exc_idt + 6 * 8 + 5   /* gate 6 (#UD) not present */
  EXC_ARM 1f
0:
  ud2
1:
  orb $0x80, exc_idt + 6 * 8 + 5
  EXC_CHECK "#NP #UD through not-present gate", 11, 6*8+3, 0b
  ret

test_ud:
  EXC_ARM 1f
0:
  .byte 0x0f, 0xb9, 0xc0            /* ud1 %eax, %eax */
1:
  EXC_CHECK "#UD ud1", 6, NOERR, 0b

  EXC_ARM 1f
0:
  .byte 0x8d, 0xc0                  /* lea with a register source */
1:
  EXC_CHECK "#UD lea register operand", 6, NOERR, 0b

  EXC_ARM 1f
0:
  .byte 0x0f, 0xc7, 0xc8            /* cmpxchg8b %eax */
1:
  EXC_CHECK "#UD cmpxchg8b register operand", 6, NOERR, 0b
  ret

.data
  .p2align 2
bounds_10_20:
  .long 10, 20
bounds_0_10:
  .long 0, 10
idt_desc_64:
  .word 64 * 8 - 1
  .long exc_idt

EXCEPTION_SUPPORT
EXC_STUB 0x80
