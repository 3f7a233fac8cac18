/*
 * mov_ss_shadow.S - MOV SS and POP SS hold a single-step trap until after the next instruction
 * (Intel SDM Vol. 3A §6.8.3, Vol. 2B MOV "Loading the SS register with a MOV instruction
 * suppresses or inhibits some debug exceptions and inhibits interrupts on the following
 * instruction boundary"): with EFLAGS.TF set, no #DB comes after MOV SS or POP SS, one comes after
 * the instruction that follows, reporting that instruction's successor. A POPF that sets TF traps
 * after the instruction that follows it.
 */
#include "guest.inc"

MULTIBOOT_HEADER
EXCEPTION_SUPPORT

GUEST_ENTRY
  call exc_init
  mov $1, %eax
  mov $db_handler, %ebx
  mov $GATE_TRAP32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate

  mov %ss, %ax
  pushf
  orl $0x100, (%esp)
  popf                           /* TF from here: the first trap comes after the next NOP */
  nop
after_first:
  mov %ax, %ss                   /* no trap here ... */
  nop
after_mov_ss:                    /* ... but after this NOP */
  push %eax
  pop %ss                        /* POP SS: the same */
  nop
after_pop_ss:
  nop
after_plain:                     /* an ordinary instruction traps at once */
  pushf
  andl $~0x100, (%esp)
  popf
  mov db_eips, %eax
  CHECK_EQ $after_first, "trap after the instruction following popf"
  mov db_eips + 4, %eax
  CHECK_EQ $after_mov_ss, "no trap after mov ss, one after the next instruction"
  mov db_eips + 8, %eax
  CHECK_EQ $(after_mov_ss + 1), "trap after push"
  mov db_eips + 12, %eax
  CHECK_EQ $after_pop_ss, "no trap after pop ss, one after the next instruction"
  mov db_eips + 16, %eax
  CHECK_EQ $after_plain, "trap after an ordinary instruction"
  CHECKS_DONE "mov_ss_shadow"

/* #DB: records the saved EIP (the next instruction to run) while TF stays set. */
db_handler:
  push %eax
  push %ecx
  mov db_count, %ecx
  cmp $8, %ecx
  jae 1f
  mov 8(%esp), %eax
  mov %eax, db_eips(,%ecx,4)
1:
  incl db_count
  pop %ecx
  pop %eax
  iret

.data
db_count: .long 0
db_eips: .skip 32
