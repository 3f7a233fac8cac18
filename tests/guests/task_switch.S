/*
 * task_switch.S - hardware task switching as Intel SDM Vol. 3A ch. 8 (§8.3, Table 8-1) and the
 * CALL, JMP, IRET and INT n pseudocode of Vol. 2A describe it: a far CALL to a TSS nests (NT set,
 * back link, both TSSs busy, CR0.TS set) and IRET returns to the caller with its registers; a far
 * JMP through a task gate does not nest (the old TSS becomes available); a task entered again
 * resumes after the instruction that left it; IDT task gates for #DE (no error code), #GP (its
 * error code on the new task's stack) and #DF (Linux's double-fault task: #NP met while
 * delivering #NP); the checks: busy TSS #GP, not-present TSS #NP, a TSS
 * below 104 bytes #TS, a task gate's DPL below CPL-or-RPL #GP; DR7's L0-L3 cleared by a switch
 * (Vol. 3B §17.2.4). The TSS's T flag is task_trap.S's.
 */
#include "guest.inc"

#define TSS_MAIN 0x18
#define TSS_A 0x20
#define GATE_A 0x28      /* task gate in the GDT -> TSS_A */
#define TSS_DE 0x30      /* #DE handler task */
#define TSS_GP 0x38      /* #GP handler task */
#define TSS_ABSENT 0x40  /* not present */
#define TSS_SHORT 0x48   /* limit 0x60: too short */
#define GATE_DPL0 0x50   /* task gate, DPL 0, used with RPL 3 */
#define DATA_ABSENT 0x58 /* data segment, not present */
#define TSS_DF 0x60      /* #DF handler task */
#define TSS_AVAIL 0x89   /* access byte: present, DPL 0, 32-bit available TSS */
#define TSS_BUSY_TYPE 0xb

MULTIBOOT_HEADER
EXCEPTION_SUPPORT

/* EAX = the type nibble of GDT descriptor `sel`. */
.macro GDT_TYPE sel
  movzbl gdt + \sel + 5, %eax
  and $0xf, %eax
.endm

GUEST_ENTRY
  LOAD_GDT
  call exc_init
  /* TSS descriptor bases (link-time addresses the assembler cannot split). */
  mov $tss_main, %eax
  lea gdt + TSS_MAIN, %edi
  call set_desc_base
  mov $tss_a, %eax
  lea gdt + TSS_A, %edi
  call set_desc_base
  lea gdt + TSS_ABSENT, %edi
  call set_desc_base
  lea gdt + TSS_SHORT, %edi
  call set_desc_base
  mov $tss_de, %eax
  lea gdt + TSS_DE, %edi
  call set_desc_base
  mov $tss_gp, %eax
  lea gdt + TSS_GP, %edi
  call set_desc_base
  mov $tss_df, %eax
  lea gdt + TSS_DF, %edi
  call set_desc_base
  mov $TSS_MAIN, %ax
  ltr %ax

  /* The checks, with the recording exception handlers. */
  EXC_ARM 1f
  ljmp $TSS_MAIN, $0             /* the running task's TSS is busy */
1:
  EXC_CHECK "jmp to a busy tss", 13, TSS_MAIN, ANY
  EXC_ARM 1f
  lcall $TSS_ABSENT, $0
1:
  EXC_CHECK "call to a not-present tss", 11, TSS_ABSENT, ANY
  EXC_ARM 1f
  lcall $TSS_SHORT, $0
1:
  EXC_CHECK "call to a tss below 104 bytes", 10, TSS_SHORT, ANY
  EXC_ARM 1f
  lcall $(GATE_DPL0 | 3), $0     /* RPL 3 above the gate's DPL 0 */
1:
  EXC_CHECK "task gate dpl below rpl", 13, GATE_DPL0, ANY

  /* A local and a global data breakpoint on a word nothing touches: the task switch clears L0
   * and keeps G1 (SDM Vol. 3B §17.2.4; task A reads DR7). */
  mov $dr_idle, %eax
  mov %eax, %dr0
  mov %eax, %dr1
  mov $0x00110009, %eax          /* L0, G1; R/W0 = R/W1 = 01 (writes), one byte */
  mov %eax, %dr7
  /* CALL to TSS_A: nested. The far pointer's offset is ignored. */
  mov $0x11111111, %ebx
  mov $0x22222222, %esi
  lcall $TSS_A, $0xf4f4f4f4
  /* Back from task A's IRET: our registers came back from our TSS. */
  mov %ebx, %eax
  CHECK_EQ $0x11111111, "ebx restored after the nested task"
  mov %esi, %eax
  CHECK_EQ $0x22222222, "esi restored after the nested task"
  mov a_saw_nt, %eax
  CHECK_EQ $1, "called task runs with nt=1"
  mov a_saw_link, %eax
  CHECK_EQ $TSS_MAIN, "called task's back link"
  mov a_saw_tr, %eax
  CHECK_EQ $TSS_A, "str in the called task"
  mov a_saw_main_type, %eax
  CHECK_EQ $TSS_BUSY_TYPE, "caller's tss stays busy"
  mov a_saw_ts, %eax
  CHECK_EQ $8, "cr0.ts set by the task switch"
  mov a_saw_dr7, %eax
  and $0xff, %eax
  CHECK_EQ $0x08, "task switch clears dr7 l0-l3 keeps g0-g3"
  xor %eax, %eax
  mov %eax, %dr7
  GDT_TYPE TSS_A
  CHECK_EQ $9, "returned-from tss available again"
  str %ax
  movzwl %ax, %eax
  CHECK_EQ $TSS_MAIN, "str back in the caller"
  pushf
  pop %eax
  and $0x4000, %eax
  CHECK_EQ $0, "caller's nt after iret"
  clts

  /* JMP through the task gate: not nested. Task A resumes after its IRET. */
  ljmp $GATE_A, $0
  mov a_jmp_nt, %eax
  CHECK_EQ $0, "jumped-to task runs with nt=0"
  mov a_jmp_main_type, %eax
  CHECK_EQ $9, "jumped-from tss available"
  GDT_TYPE TSS_A
  CHECK_EQ $9, "task a available after it jumped back"
  GDT_TYPE TSS_MAIN
  CHECK_EQ $TSS_BUSY_TYPE, "main busy again"
  clts

  /* IDT task gates: #DE (vector 0) and #GP (vector 13). */
  mov $0, %eax
  mov $0, %ebx
  mov $0x8500, %ecx              /* present, DPL 0, task gate */
  mov $TSS_DE, %edx
  call exc_set_gate
  mov $13, %eax
  mov $TSS_GP, %edx
  call exc_set_gate
  mov $7, %eax
  mov $0, %edx
  xor %ecx, %ecx
de_site:
  div %ecx                       /* #DE: task DE fixes our EIP past the 2-byte DIV */
  mov de_count, %eax
  CHECK_EQ $1, "divide error through a task gate"
  mov de_saw_link, %eax
  CHECK_EQ $TSS_MAIN, "#de task's back link"
  mov de_saw_eip, %eax
  CHECK_EQ $de_site, "#de saved eip is the faulting div"
  mov $0x123b, %ax
gp_site:
  mov %ax, %es                   /* #GP(0x1238): a GDT selector beyond the GDT, RPL dropped */
  mov gp_error, %eax
  CHECK_EQ $0x1238, "#gp error code on the handler task's stack"
  mov gp_saw_eip, %eax
  CHECK_EQ $gp_site, "#gp saved eip is the faulting mov"

  /* #DF through a task gate: #NP(DATA_ABSENT) meets a not-present #NP gate, #NP again:
   * contributory on contributory (SDM Vol. 3A Table 6-5). The saved EIP of a #DF is undefined:
   * the #DF task sends the faulting task to df_resume. */
  mov $11, %eax
  mov $0, %ebx
  mov $0x0e00, %ecx              /* interrupt gate, not present */
  mov $CODE_SEL, %edx
  call exc_set_gate
  mov $8, %eax
  mov $0x8500, %ecx
  mov $TSS_DF, %edx
  call exc_set_gate
  mov $DATA_ABSENT, %ax
  mov %ax, %ds
  EXIT(7)                        /* not reached */
df_resume:
  mov df_count, %eax
  CHECK_EQ $1, "double fault through a task gate"
  mov df_error, %eax
  CHECK_EQ $0, "#df error code 0 on the handler task's stack"
  CHECKS_DONE "task_switch"

/* Task A. Entered first by CALL, then by JMP (it resumes after its IRET). */
task_a:
  pushf
  pop %eax
  shr $14, %eax
  and $1, %eax
  mov %eax, a_saw_nt
  movzwl tss_a, %eax
  mov %eax, a_saw_link
  str %ax
  movzwl %ax, %eax
  mov %eax, a_saw_tr
  GDT_TYPE TSS_MAIN
  mov %eax, a_saw_main_type
  mov %cr0, %eax
  and $8, %eax
  mov %eax, a_saw_ts
  mov %dr7, %eax
  mov %eax, a_saw_dr7
  mov $0x99999999, %ebx
  mov $0x88888888, %esi
  iret                           /* NT=1: back to the caller */
  pushf
  pop %eax
  shr $14, %eax
  and $1, %eax
  mov %eax, a_jmp_nt
  GDT_TYPE TSS_MAIN
  mov %eax, a_jmp_main_type
  ljmp $TSS_MAIN, $0             /* available now: resumes main after its JMP */
  EXIT(9)                        /* never resumed again */

/* The #DE task: records, steps the faulting task past its DIV, returns. */
task_de:
  incl de_count
  movzwl tss_de, %eax
  mov %eax, de_saw_link
  mov tss_main + 0x20, %eax
  mov %eax, de_saw_eip
  addl $2, tss_main + 0x20
  iret
  jmp task_de                    /* entered again: start over */

/* The #GP task: pops the error code, steps the faulting task past its MOV ES. */
task_gp:
  pop %eax
  mov %eax, gp_error
  mov tss_main + 0x20, %eax
  mov %eax, gp_saw_eip
  addl $2, tss_main + 0x20
  iret
  jmp task_gp

/* The #DF task: pops the error code, sends the faulting task to df_resume. */
task_df:
  pop %eax
  mov %eax, df_error
  incl df_count
  movl $df_resume, tss_main + 0x20
  iret
  jmp task_df

.data
  .p2align 3
gdt:
  GDT_FLAT_ENTRIES               /* 0x08 code, 0x10 data */
  SEG_DESC 0, 0x67, TSS_AVAIL, 0 /* 0x18 TSS_MAIN */
  SEG_DESC 0, 0x67, TSS_AVAIL, 0 /* 0x20 TSS_A */
  .word 0, TSS_A, 0x8500, 0      /* 0x28 task gate -> TSS_A */
  SEG_DESC 0, 0x67, TSS_AVAIL, 0 /* 0x30 TSS_DE */
  SEG_DESC 0, 0x67, TSS_AVAIL, 0 /* 0x38 TSS_GP */
  SEG_DESC 0, 0x67, 0x09, 0      /* 0x40 not present */
  SEG_DESC 0, 0x60, TSS_AVAIL, 0 /* 0x48 too short */
  .word 0, TSS_A, 0x8500, 0      /* 0x50 task gate, DPL 0 */
  .quad 0x00cf13000000ffff       /* 0x58 data, not present */
  SEG_DESC 0, 0x67, TSS_AVAIL, 0 /* 0x60 TSS_DF */
  GDT_END

  TASK_TSS tss_main, 0, 0
  TASK_TSS tss_a, task_a, stack_a_top
  TASK_TSS tss_de, task_de, stack_de_top
  TASK_TSS tss_gp, task_gp, stack_gp_top
  TASK_TSS tss_df, task_df, stack_df_top

a_saw_nt: .long -1
a_saw_link: .long -1
a_saw_tr: .long -1
a_saw_main_type: .long -1
a_saw_ts: .long -1
a_saw_dr7: .long -1
dr_idle: .long 0
a_jmp_nt: .long -1
a_jmp_main_type: .long -1
de_count: .long 0
de_saw_link: .long -1
de_saw_eip: .long -1
gp_error: .long -1
gp_saw_eip: .long -1
df_count: .long 0
df_error: .long -1

.bss
  .p2align 4
  .skip 1024
stack_a_top:
  .skip 1024
stack_de_top:
  .skip 1024
stack_gp_top:
  .skip 1024
stack_df_top:
