/* sysenter_loop: many SYSENTER/SYSEXIT round trips between CPL 3 and CPL 0 with 32-bit paging on
 * (Intel SDM Vol. 2B SYSENTER, SYSEXIT), while the kernel side changes what they load: bt runs
 * most of them inline in translated code (docs/bt.md "System calls inline"), from state the
 * monitor prepares, so each change must reach the next one.
 *
 *  - SYSENTER: CS = IA32_SYSENTER_CS, SS = CS + 8, ESP = IA32_SYSENTER_ESP, EIP =
 *    IA32_SYSENTER_EIP, IF cleared; the kernel alternates SYSENTER_ESP between two stacks and
 *    SYSENTER_EIP between two entry points with WRMSR.
 *  - SYSEXIT: CS = SYSENTER_CS + 16 | 3, SS = + 24 | 3, ESP = ECX (varied), EIP = EDX, IF as it
 *    was (the kernel sets it with STI on every other return, as Linux's "sti; sysexit" does).
 *  - The privilege of memory accesses follows at once: the first instruction after SYSENTER
 *    writes a supervisor-only page; now and then the first after SYSEXIT reads it and takes #PF
 *    (error code 5).
 *  - Between them the kernel loads FS (MOV Sreg through the monitor) and puts it back.
 * Each mismatch is counted where it is seen; the counts are checked at the end (all zero),
 * then the #PF checks. Exits with 0 when every check passed (status 1). */
#include "guest.inc"

#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define ITERATIONS 600
#define PROBE_EVERY 128         /* the user reads the supervisor page every this many */
#define KPAGE 0x400000          /* linear page: supervisor-only (PTE U/S = 0) */
#define IF_BIT 0x200

.macro WRMSR_IMM msr, lo
  mov $(\msr), %ecx
  mov $(\lo), %eax
  xor %edx, %edx
  wrmsr
.endm

/* Counts one mismatch in `counter` unless `got` (a register) equals `want`. */
.macro EXPECT got, want, counter
  cmp \want, \got
  je 8790f
  incl \counter
8790:
.endm

MULTIBOOT_HEADER
EXCEPTION_SUPPORT
RING3_SUPPORT

GUEST_ENTRY
  LOAD_GDT
  call exc_init
  call ring3_init
  call paging_on
  movl $USER_CS, exc_want_cs        /* the #PF checks are of faults at CPL 3 */
  mov %esp, saved_esp
  mov $USER_DS, %eax                /* what Linux returns to user mode with */
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %fs
  mov %ax, %gs
  WRMSR_IMM MSR_SYSENTER_CS, CODE_SEL
  WRMSR_IMM MSR_SYSENTER_ESP, kstack_a_top
  WRMSR_IMM MSR_SYSENTER_EIP, entry_a
  movl $kstack_a_top, want_kesp
  movl $1, want_entry
  movl $0, iteration
  jmp kernel_return

/* CPL 3: check what SYSEXIT loaded, probe the supervisor page now and then, SYSENTER. */
user_loop:
  /* First, before anything the monitor runs (which would reload the window): the probe. */
  mov iteration, %eax
  and $(PROBE_EVERY - 1), %eax
  jnz 2f
  EXC_ARM 1f
user_probe:
  mov KPAGE, %eax                   /* #PF: a supervisor page read at CPL 3 */
1:
  movl $1, probed
2:
  mov %cs, %eax
  EXPECT %eax, $USER_CS, bad_user_cs
  mov %ss, %eax
  EXPECT %eax, $USER_DS, bad_user_ss
  EXPECT %esp, want_uesp, bad_user_esp
  pushf
  pop %eax
  and $IF_BIT, %eax
  EXPECT %eax, want_if, bad_user_if
  sysenter

/* CPL 0, through one of the two IA32_SYSENTER_EIP values. */
entry_a:
  movl $1, KPAGE                    /* first: a supervisor-only store, CPL 0 now */
  jmp kernel_entry
entry_b:
  movl $2, KPAGE
kernel_entry:
  mov %cs, %eax
  EXPECT %eax, $CODE_SEL, bad_kernel_cs
  mov %ss, %eax
  EXPECT %eax, $DATA_SEL, bad_kernel_ss
  EXPECT %esp, want_kesp, bad_kernel_esp
  pushf
  pop %eax
  and $IF_BIT, %eax
  EXPECT %eax, $0, bad_kernel_if
  mov KPAGE, %eax
  EXPECT %eax, want_entry, bad_entry
  mov $DATA_SEL, %eax               /* a kernel FS while in the kernel */
  mov %ax, %fs
  cmpl $0, probed
  je 3f
  push %edx
  EXC_CHECK "user read of a supervisor page after sysexit", 14, 5, user_probe
  pop %edx
  movl $0, probed
3:
  incl iteration
  cmpl $ITERATIONS, iteration
  je finish

  /* The next SYSENTER's stack: alternate every 5 iterations; its entry: every 3rd is entry_b. */
  mov iteration, %eax
  xor %edx, %edx
  mov $5, %ecx
  div %ecx
  and $1, %eax
  mov $kstack_a_top, %ebx
  mov $kstack_b_top, %ecx
  test %eax, %eax
  cmovnz %ecx, %ebx
  mov %ebx, want_kesp
  mov %ebx, %eax
  xor %edx, %edx
  mov $MSR_SYSENTER_ESP, %ecx
  wrmsr
  mov iteration, %eax
  xor %edx, %edx
  mov $3, %ecx
  div %ecx
  mov $entry_a, %eax
  movl $1, want_entry
  test %edx, %edx
  jnz 4f
  mov $entry_b, %eax
  movl $2, want_entry
4:
  xor %edx, %edx
  mov $MSR_SYSENTER_EIP, %ecx
  wrmsr

kernel_return:
  mov $USER_DS, %eax
  mov %ax, %fs
  /* The user's ESP: 4 * (iteration mod 16) below the top; IF set on odd iterations. */
  mov iteration, %eax
  and $15, %eax
  shl $2, %eax
  mov $ring3_ustack_top, %ecx
  sub %eax, %ecx
  mov %ecx, want_uesp
  mov $user_loop, %edx
  testl $1, iteration
  jz 5f
  movl $IF_BIT, want_if
  sti
  sysexit
5:
  movl $0, want_if
  sysexit

finish:
  cli
  mov saved_esp, %esp
  mov $DATA_SEL, %eax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %fs
  mov %ax, %gs
  mov iteration, %eax
  CHECK_EQ $ITERATIONS, "round trips"
  mov bad_user_cs, %eax
  CHECK_EQ $0, "sysexit cs = sysenter_cs + 16 | 3, every time"
  mov bad_user_ss, %eax
  CHECK_EQ $0, "sysexit ss = sysenter_cs + 24 | 3, every time"
  mov bad_user_esp, %eax
  CHECK_EQ $0, "sysexit esp = ecx, every time"
  mov bad_user_if, %eax
  CHECK_EQ $0, "sysexit keeps if, every time"
  mov bad_kernel_cs, %eax
  CHECK_EQ $0, "sysenter cs = sysenter_cs, every time"
  mov bad_kernel_ss, %eax
  CHECK_EQ $0, "sysenter ss = sysenter_cs + 8, every time"
  mov bad_kernel_esp, %eax
  CHECK_EQ $0, "sysenter esp = the sysenter_esp last written, every time"
  mov bad_kernel_if, %eax
  CHECK_EQ $0, "sysenter clears if, every time"
  mov bad_entry, %eax
  CHECK_EQ $0, "sysenter eip = the sysenter_eip last written, every time"
  mov KPAGE, %eax
  CHECK_EQ want_entry, "the supervisor page holds the last entry's store"
  CHECKS_DONE "sysenter_loop"

/* Identity 4 MiB page for 0-4 MiB (user, writable); KPAGE through a page table, supervisor. */
paging_on:
  movl $(0 | PDE_PS | PDE_US | PDE_RW | PDE_P), page_directory
  mov $page_table, %eax
  or $(PDE_US | PDE_RW | PDE_P), %eax
  mov %eax, page_directory + 4
  mov $kframe, %eax
  or $(PDE_RW | PDE_P), %eax
  mov %eax, page_table
  PAGING_ON_PSE page_directory
  ret

.data
  .p2align 2
saved_esp: .long 0
iteration: .long 0
want_entry: .long 0
want_kesp: .long 0
want_uesp: .long 0
want_if: .long 0
probed: .long 0
bad_user_cs: .long 0
bad_user_ss: .long 0
bad_user_esp: .long 0
bad_user_if: .long 0
bad_kernel_cs: .long 0
bad_kernel_ss: .long 0
bad_kernel_esp: .long 0
bad_kernel_if: .long 0
bad_entry: .long 0
  .p2align 12
gdt:
  GDT_STANDARD_ENTRIES
  GDT_END

.bss
  .p2align 12
page_directory: .skip 4096
page_table: .skip 4096
kframe: .skip 4096
  .skip 4096
kstack_a_top:
  .skip 4096
kstack_b_top:
