/* exceptions_cpl3: exceptions and software interrupts raised at CPL 3 (Intel SDM Vol. 3A §6.12
 * "Exception and Interrupt Handling", §6.15; Vol. 2 for each instruction's #GP conditions).
 * The guest loads a TSS (SS0:ESP0 = 0x10:ring3_kstack_top, limit 0x67: no I/O permission
 * bitmap), enters ring 3 with IRET (RING3_SUPPORT in guest.inc) and runs one snippet per case;
 * the handler records the exception and IRETs back to ring 3, which returns to ring 0 through
 * INT 0x81. For each exception: vector, error code, saved EIP, saved CS (0x1b: RPL 3), and the
 * privilege-change frame (§6.12.1): the handler runs on ESP0 (its frame EIP slot at ESP0 - 20),
 * the pushed SS:ESP are the ring-3 ones. One line per check: "ok <what>" or "FAIL <what> got
 * 0x.. want 0x..". Exits with 0 when every check passed (status 1).
 *
 * Covered: #GP(0) from CLI, STI, HLT, IN, OUT, OUTSB with IOPL = 0 (§18.2: CPL > IOPL and no
 * bitmap); CLI/IN allowed with IOPL = 3; #GP(0) from privileged instructions (MOV from CR0,
 * MOV to DR7, LGDT, LIDT, LLDT, LTR, LMSW, CLTS, RDMSR, WRMSR, INVD, WBINVD, INVLPG); RDTSC
 * #GP(0) with CR4.TSD = 1, allowed with TSD = 0; #GP(vector*8+2) from INT n, INT3 and INTO
 * through DPL-0 gates; INT3 through a DPL-3 gate (#BP); INT1 through a DPL-0 gate (#DB: INT1 has
 * no DPL check); #UD, #DE; #AC(0) for a misaligned load with CR0.AM = 1 and EFLAGS.AC = 1
 * (none at CPL 0 or with AM = 0); a system call through a DPL-3 trap gate (INT 0x80) that
 * returns a value, keeps IF and runs on the ring-0 stack; #GP(selector) for a DPL-0 data
 * segment into DS at CPL 3.
 * kvm-pvm cannot emulate INT n or IRET, hence the skip on kvm. */
#include "guest.inc"

#define EFL_USER 0x202          /* IF = 1, IOPL = 0 */
#define EFL_USER_IOPL3 0x3202   /* IF = 1, IOPL = 3 */
#define FRAME3_EIP_SLOT (ring3_kstack_top - 20)

/* Runs the ring-3 snippet `entry` with EFLAGS image `eflags`. Preserves every register. */
.macro USER_RUN entry, eflags=EFL_USER
  push %eax
  push %ebx
  mov $(\eflags), %eax
  mov $\entry, %ebx
  call run_user
  pop %ebx
  pop %eax
.endm

/* EXC_CHECK plus the privilege-change frame checks. */
.macro EXC_CHECK3 name, vector, error, eip
  EXC_CHECK "\name", \vector, \error, \eip
  .pushsection .rodata
8771:
  .asciz "\name"
  .popsection
  push %esi
  mov $8771b, %esi
  call check_frame3
  pop %esi
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT
  call exc_init
  call ring3_init
  movl $USER_CS, exc_want_cs
  /* Gates for the INT n tests: 0x40 DPL 0, 3 (#BP) DPL 3, 0x80 a DPL-3 trap gate. */
  mov $0x40, %eax
  mov $exc_stub_0x40, %ebx
  mov $GATE_INTR32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
  mov $0x80, %eax
  mov $syscall_handler, %ebx
  mov $GATE_TRAP32_DPL3, %ecx
  call exc_set_gate

  call test_iopl
  call test_privileged
  call test_rdtsc
  call test_int
  call test_faults
  call test_ac
  call test_syscall
  call test_segment

  CHECKS_DONE "exceptions_cpl3"

/* check_frame3: ESI = name. The frame of a ring-3 exception on the ring-0 stack. */
check_frame3:
  push %eax
  push %edx
  mov %esi, check_prefix
  mov exc_frame, %eax
  mov $FRAME3_EIP_SLOT, %edx
  CHECK "frame at esp0 - 20"
  mov exc_esp3, %eax
  mov $ring3_ustack_top, %edx
  CHECK "pushed esp"
  mov exc_ss3, %eax
  mov $USER_DS, %edx
  CHECK "pushed ss"
  movl $0, check_prefix
  pop %edx
  pop %eax
  ret

/* I/O sensitivity (Vol. 1 §18.2, §18.8): CPL 3 > IOPL 0 and no I/O bitmap: #GP(0). */
test_iopl:
  USER_RUN u_cli
  EXC_CHECK3 "#GP cli at cpl 3 iopl 0", 13, 0, u_cli_f
  USER_RUN u_sti
  EXC_CHECK3 "#GP sti at cpl 3 iopl 0", 13, 0, u_sti_f
  USER_RUN u_hlt
  EXC_CHECK3 "#GP hlt at cpl 3", 13, 0, u_hlt_f
  USER_RUN u_in
  EXC_CHECK3 "#GP in at cpl 3 iopl 0", 13, 0, u_in_f
  USER_RUN u_out
  EXC_CHECK3 "#GP out at cpl 3 iopl 0", 13, 0, u_out_f
  USER_RUN u_outsb
  EXC_CHECK3 "#GP outsb at cpl 3 iopl 0", 13, 0, u_outsb_f

  /* IOPL 3: CLI is allowed at CPL 3 (IF becomes 0), and so is port I/O (UART scratch). */
  USER_RUN u_iopl3, EFL_USER_IOPL3
  EXC_NONE "cli and in/out at cpl 3 iopl 3"
  mov ring3_eflags, %eax
  and $0x3200, %eax
  CHECK_EQ $0x3000, "cli at cpl 3 iopl 3 cleared if"
  mov ring3_eax, %eax
  CHECK_EQ $0x5a, "in at cpl 3 iopl 3 reads the scratch register"
  ret

u_cli:
  EXC_ARM 1f
u_cli_f:
  cli
1:
  USER_RETURN
u_sti:
  EXC_ARM 1f
u_sti_f:
  sti
1:
  USER_RETURN
u_hlt:
  EXC_ARM 1f
u_hlt_f:
  hlt
1:
  USER_RETURN
u_in:
  mov $COM1 + 7, %dx
  EXC_ARM 1f
u_in_f:
  inb %dx, %al
1:
  USER_RETURN
u_out:
  EXC_ARM 1f
u_out_f:
  outb %al, $0x80
1:
  USER_RETURN
u_outsb:
  mov $COM1 + 7, %dx
  mov $gdt, %esi
  EXC_ARM 1f
u_outsb_f:
  outsb
1:
  USER_RETURN
u_iopl3:
  EXC_ARM 1f
  cli
  mov $COM1 + 7, %dx
  mov $0x5a, %al
  outb %al, %dx
  xor %eax, %eax
  inb %dx, %al
1:
  USER_RETURN

/* Privileged instructions (Vol. 3A §5.9): #GP(0) at CPL > 0. */
.macro PRIV name, insn:vararg
  USER_RUN 2f
  EXC_CHECK3 "#GP \name at cpl 3", 13, 0, 0f
  jmp 3f
2:
  xor %eax, %eax
  xor %ecx, %ecx
  xor %edx, %edx
  EXC_ARM 1f
0:
  \insn
1:
  USER_RETURN
3:
.endm

test_privileged:
  PRIV "mov from cr0", mov %cr0, %eax
  PRIV "mov to dr7", mov %eax, %dr7
  PRIV "lgdt", lgdt gdt_desc
  PRIV "lidt", lidt exc_idt_desc
  PRIV "lldt", lldt %ax
  PRIV "ltr", ltr %ax
  PRIV "lmsw", lmsw %ax
  PRIV "clts", clts
  PRIV "rdmsr", rdmsr
  PRIV "wrmsr", wrmsr
  PRIV "invd", invd
  PRIV "wbinvd", wbinvd
  PRIV "invlpg", invlpg (%eax)
  ret

/* RDTSC (Vol. 2B): #GP(0) if CR4.TSD = 1 and CPL > 0. */
test_rdtsc:
  mov %cr4, %eax
  or $0x4, %eax
  mov %eax, %cr4
  USER_RUN u_rdtsc
  EXC_CHECK3 "#GP rdtsc at cpl 3 with cr4.tsd=1", 13, 0, u_rdtsc_f
  mov %cr4, %eax
  and $~0x4, %eax
  mov %eax, %cr4
  USER_RUN u_rdtsc
  EXC_NONE "rdtsc at cpl 3 with cr4.tsd=0"
  ret
u_rdtsc:
  EXC_ARM 1f
u_rdtsc_f:
  rdtsc
1:
  USER_RETURN

/* INT n, INT3, INTO check the gate's DPL against CPL (Vol. 2A INT n: #GP(error_code(vector, 1,
 * 0)) = vector*8+2); INT1 does not. */
test_int:
  USER_RUN u_int40
  EXC_CHECK3 "#GP int 0x40 through a dpl-0 gate", 13, 0x40*8+2, u_int40_f
  USER_RUN u_int3
  EXC_CHECK3 "#GP int3 through a dpl-0 gate", 13, 3*8+2, u_int3_f
  USER_RUN u_into
  EXC_CHECK3 "#GP into through a dpl-0 gate", 13, 4*8+2, u_into_f

  mov $3, %eax
  mov $exc_stub_3, %ebx
  mov $GATE_INTR32_DPL3, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
  USER_RUN u_int3
  EXC_CHECK3 "#BP int3 through a dpl-3 gate", 3, NOERR, u_int3_next
  mov exc_hflags, %eax
  and $0x200, %eax
  CHECK_EQ $0, "#BP interrupt gate cleared if"
  mov exc_eflags, %eax
  and $0x3200, %eax
  CHECK_EQ $0x200, "#BP pushed eflags if=1 iopl=0"
  mov $3, %eax
  mov $GATE_INTR32, %ecx
  call exc_set_gate

  USER_RUN u_int1
  EXC_CHECK3 "#DB int1 through a dpl-0 gate", 1, NOERR, u_int1_next
  ret
u_int40:
  EXC_ARM 1f
u_int40_f:
  int $0x40
1:
  USER_RETURN
u_int3:
  EXC_ARM 1f
u_int3_f:
  int3
u_int3_next:
  nop
1:
  USER_RETURN
u_into:
  mov $0x7f, %al
  add $1, %al                       /* OF = 1 */
  EXC_ARM 1f
u_into_f:
  into
  nop
1:
  USER_RETURN
u_int1:
  EXC_ARM 1f
  .byte 0xf1                        /* int1 */
u_int1_next:
  nop
1:
  USER_RETURN

test_faults:
  USER_RUN u_ud
  EXC_CHECK3 "#UD ud2 at cpl 3", 6, NOERR, u_ud_f
  USER_RUN u_de
  EXC_CHECK3 "#DE div by zero at cpl 3", 0, NOERR, u_de_f
  ret
u_ud:
  EXC_ARM 1f
u_ud_f:
  ud2
1:
  USER_RETURN
u_de:
  xor %eax, %eax
  xor %edx, %edx
  xor %ecx, %ecx
  EXC_ARM 1f
u_de_f:
  div %ecx
1:
  USER_RETURN

/* #AC (Vol. 3A §6.15 Interrupt 17): CR0.AM = 1, EFLAGS.AC = 1, CPL 3 and an unaligned operand;
 * error code 0. */
test_ac:
  mov %cr0, %eax
  or $0x40000, %eax                 /* AM */
  mov %eax, %cr0
  USER_RUN u_ac
  EXC_CHECK3 "#AC misaligned load at cpl 3", 17, 0, u_ac_f
  mov exc_eflags, %eax
  and $0x40000, %eax
  CHECK_EQ $0x40000, "#AC pushed eflags.ac"

  pushf                             /* CPL 0 with AM = 1 and AC = 1: no check */
  orl $0x40000, (%esp)
  popf
  EXC_ARM 1f
  mov misaligned + 1, %eax
1:
  pushf
  andl $~0x40000, (%esp)
  popf
  EXC_NONE "misaligned load at cpl 0 with am=1 ac=1"

  mov %cr0, %eax
  and $~0x40000, %eax
  mov %eax, %cr0
  USER_RUN u_ac
  EXC_NONE "misaligned load at cpl 3 with am=0 ac=1"
  ret
u_ac:
  pushf
  orl $0x40000, (%esp)              /* AC can be set at any CPL */
  popf
  EXC_ARM 1f
u_ac_f:
  mov misaligned + 1, %eax
1:
  USER_RETURN

/* A system call through a DPL-3 trap gate: the handler adds 1 to EAX; a trap gate leaves IF
 * as it was (1); the handler runs at CPL 0 on ESP0. */
test_syscall:
  USER_RUN u_syscall
  mov ring3_eax, %eax
  CHECK_EQ $42, "int 0x80 system call result"
  mov sys_esp, %eax
  CHECK_EQ $FRAME3_EIP_SLOT, "int 0x80 handler esp = esp0 - 20"
  mov sys_eflags, %eax
  and $0x200, %eax
  CHECK_EQ $0x200, "int 0x80 trap gate keeps if"
  mov sys_cs, %eax
  CHECK_EQ $CODE_SEL, "int 0x80 handler cs"
  mov sys_frame_cs, %eax
  CHECK_EQ $USER_CS, "int 0x80 pushed cs"
  mov sys_frame_eip, %eax
  CHECK_EQ $u_syscall_next, "int 0x80 pushed eip"
  mov sys_frame_esp, %eax
  CHECK_EQ $ring3_ustack_top, "int 0x80 pushed esp"
  mov sys_frame_ss, %eax
  CHECK_EQ $USER_DS, "int 0x80 pushed ss"
  mov ring3_eflags, %eax
  and $0x3200, %eax
  CHECK_EQ $0x200, "int 0x80 back at cpl 3 with if=1 iopl=0"
  ret
u_syscall:
  mov $41, %eax
  int $0x80
u_syscall_next:
  USER_RETURN

syscall_handler:
  push %ds
  push %ebx
  mov $DATA_SEL, %ebx
  mov %bx, %ds
  lea 8(%esp), %ebx
  mov %ebx, sys_esp
  pushf
  pop %ebx
  mov %ebx, sys_eflags
  mov %cs, %ebx
  mov %ebx, sys_cs
  mov 8(%esp), %ebx
  mov %ebx, sys_frame_eip
  movzwl 12(%esp), %ebx
  mov %ebx, sys_frame_cs
  mov 20(%esp), %ebx
  mov %ebx, sys_frame_esp
  movzwl 24(%esp), %ebx
  mov %ebx, sys_frame_ss
  inc %eax
  pop %ebx
  pop %ds
  iret

/* MOV to DS (Vol. 2A): #GP(selector) if DPL < CPL or RPL for a data segment. */
test_segment:
  USER_RUN u_ds
  EXC_CHECK3 "#GP dpl-0 data segment into ds at cpl 3", 13, DATA_SEL, u_ds_f
  ret
u_ds:
  mov $DATA_SEL, %eax
  EXC_ARM 1f
u_ds_f:
  mov %ax, %ds
1:
  USER_RETURN

.data
  .p2align 2
sys_esp: .long 0
sys_eflags: .long 0
sys_cs: .long 0
sys_frame_eip: .long 0
sys_frame_cs: .long 0
sys_frame_esp: .long 0
sys_frame_ss: .long 0
misaligned: .long 0, 0

  .p2align 3
gdt:
  GDT_STANDARD_ENTRIES
  GDT_END

EXCEPTION_SUPPORT
EXC_STUB 0x40
RING3_SUPPORT
