/*
 * task_trap.S - the T (debug trap) flag of a TSS (Intel SDM Vol. 3A §8.2.1; Vol. 3B §17.3.1.5):
 * a task switch into a task whose TSS has T set raises #DB, a trap, after the switch and before
 * the new task's first instruction, with DR6.BT set; the handler runs in the new task, and the
 * task's first instruction runs when it returns. Entered by CALL (the task returns by IRET) and by
 * an INT n through a task gate in the IDT.
 * QEMU TCG reads T and ignores it (its task switch leaves it as a note), and so does KVM's task
 * switch emulation (a TODO in vmx's handle_task_switch): the SDM is the oracle.
 */
#include "guest.inc"

#define TSS_MAIN 0x18
#define TSS_T 0x20
#define TSS_AVAIL 0x89 /* access byte: present, DPL 0, 32-bit available TSS */
#define GATE_VECTOR 0x40

MULTIBOOT_HEADER
EXCEPTION_SUPPORT

/* Checks what the last switch into task T recorded, then clears the record. */
.macro T_CHECKS how
  mov db_count, %eax
  CHECK_EQ $1, "\how: one #db"
  mov db_dr6, %eax
  and $0x8000, %eax
  CHECK_EQ $0x8000, "\how: dr6.bt"
  mov db_eip, %eax
  CHECK_EQ $task_t, "\how: #db before the task's first instruction"
  mov db_tr, %eax
  CHECK_EQ $TSS_T, "\how: handler runs in the new task"
  mov t_runs, %eax
  CHECK_EQ $1, "\how: the task runs after the handler"
  movl $0, db_count
  movl $0, db_dr6
  movl $0, t_runs
  movl $task_t, tss_t + 0x20      /* task T starts over next time */
  clts
.endm

GUEST_ENTRY
  LOAD_GDT
  call exc_init
  mov $tss_main, %eax
  lea gdt + TSS_MAIN, %edi
  call set_desc_base
  mov $tss_t, %eax
  lea gdt + TSS_T, %edi
  call set_desc_base
  mov $TSS_MAIN, %ax
  ltr %ax
  /* #DB: a handler that records DR6, the frame's EIP and TR. */
  mov $1, %eax
  mov $db_handler, %ebx
  mov $GATE_INTR32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
  /* INT GATE_VECTOR: a task gate to task T. */
  mov $GATE_VECTOR, %edi
  shl $3, %edi
  add $exc_idt, %edi
  movl $(TSS_T << 16), (%edi)
  movl $0x8500, 4(%edi)          /* present, DPL 0, task gate */
  xor %eax, %eax
  mov %eax, %dr6

  lcall $TSS_T, $0
  T_CHECKS "call"
  int $GATE_VECTOR
  T_CHECKS "int through a task gate"
  CHECKS_DONE "task_trap"

/* Task T: its first instruction, then back to the task that entered it (NT=1). */
task_t:
  incl t_runs
  iret
  jmp task_t

db_handler:
  push %eax
  incl db_count
  mov %dr6, %eax
  mov %eax, db_dr6
  mov 4(%esp), %eax
  mov %eax, db_eip
  str %ax
  movzwl %ax, %eax
  mov %eax, db_tr
  xor %eax, %eax
  mov %eax, %dr6
  pop %eax
  iret

.data
  .p2align 3
gdt:
  GDT_FLAT_ENTRIES               /* 0x08 code, 0x10 data */
  SEG_DESC 0, 0x67, TSS_AVAIL, 0 /* 0x18 TSS_MAIN */
  SEG_DESC 0, 0x67, TSS_AVAIL, 0 /* 0x20 TSS_T */
  GDT_END

  TASK_TSS tss_main, 0, 0, 0
  TASK_TSS tss_t, task_t, stack_t_top, 1

db_count: .long 0
db_dr6: .long 0
db_eip: .long -1
db_tr: .long -1
t_runs: .long 0

.bss
  .p2align 4
  .skip 1024
stack_t_top:
