/* sensitive: the sensitive unprivileged instructions of Robin & Irvine ("Analysis of the Intel
 * Pentium's Ability to Support a Secure Virtual Machine Monitor", 2000) at CPL 3 and CPL 0: they
 * do not trap when deprivileged, so a monitor that runs the guest at a lower privilege must
 * translate them to give the guest its own view. Expected values are the architectural ones
 * (Intel SDM Vol. 2 for each instruction). One line per check: "ok <what>" or "FAIL <what> got
 * 0x.. want 0x..". Exits with 0 when every check passed (status 1).
 *
 *  - PUSHF at CPL 3 shows the guest's IF and IOPL (0x246 with IF=1 IOPL=0, 0x3046 with IF=0
 *    IOPL=3 after CMP EAX,EAX). POPF at CPL 3 with IOPL 0 changes the arithmetic flags, AC and
 *    ID but neither IF nor IOPL nor VM, without a fault; with IOPL 3 it changes IF but not IOPL.
 *    POPF at CPL 0 changes IOPL and IF.
 *  - SGDT/SIDT at CPL 3 store the limit and base the guest loaded; SLDT/STR the selectors it
 *    loaded (upper 16 bits of a 32-bit destination cleared); SMSW the low 16 bits of CR0
 *    (PE, MP, ET, NE = 0x0033).
 *  - LAR/LSL/VERR/VERW on code, data, null, beyond-limit, DPL-0 (from CPL 3), conforming,
 *    execute-only, read-only, LDT, TSS, call-gate and interrupt-gate selectors: ZF, the access
 *    rights masked with 0x00F0FF00 (bits 19:16 are undefined), the byte-granular limit; the
 *    destination is unchanged when ZF = 0.
 *  - MOV from CS/SS/DS (RPL 3 at ring 3, zero-extended), PUSH CS (4 bytes), PUSH CS/POP DS
 *    (a readable code segment is a valid DS), CPUID at CPL 3 = CPUID at CPL 0.
 *  - Far transfers: CALL to a conforming DPL-0 segment runs at CPL 3 (CS RPL 3); JMP far to
 *    the ring-3 code selector; CALL far to DPL-0 code and RET far to CPL 0: #GP(selector);
 *    a call gate (DPL 3, one parameter) to CPL 0: the parameter is copied to the ring-0 stack
 *    (ESP0 - 20), RET 4 returns to ring 3 and pops it there too.
 * kvm-pvm cannot emulate IRET, INT n, LAR, LSL, VERR/VERW or call gates, hence the skip. */
#include "guest.inc"

#define LDT_SEL 0x30            /* LDT, DPL 3, limit 0x0f */
#define CGATE0_SEL 0x38         /* call gate, DPL 3, offset 0 (for LAR/LSL only) */
#define DATA_SMALL3_SEL 0x40    /* data, DPL 3, limit 0x12345 bytes */
#define XO_CODE3_SEL 0x48       /* execute-only code, DPL 3 */
#define CONF_CODE0_SEL 0x50     /* conforming readable code, DPL 0 */
#define RO_DATA3_SEL 0x58       /* read-only data, DPL 3 */
#define IGATE_SEL 0x60          /* an interrupt gate in the GDT: not valid for LAR */
#define CGATE_SEL 0x68          /* call gate, DPL 3, to gate_target at CPL 0, 1 parameter */
#define BEYOND_SEL 0x100

#define EFL_USER 0x202
#define PRESET 0xdeadbeef

/* The selector table: op (LAR 0, LSL 1, VERR 2, VERW 3), selector, ZF wanted, value wanted
 * (LAR: masked with 0x00f0ff00; PRESET: destination unchanged), name; ZF and value got. */
#define OP_LAR 0
#define OP_LSL 1
#define OP_VERR 2
#define OP_VERW 3
#define ENTRY_SIZE 28
.macro SEL_TEST op, sel, zf, value, name
  .pushsection .rodata
8772:
  .asciz "\name"
  .popsection
  .long \op, \sel, \zf, \value, 8772b, -1, -1
.endm

.macro USER_RUN entry, eflags=EFL_USER
  push %eax
  push %ebx
  mov $(\eflags), %eax
  mov $\entry, %ebx
  call run_user
  pop %ebx
  pop %eax
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT
  call exc_init
  call ring3_init
  mov $gdt + LDT_SEL, %edi
  mov $ldt, %eax
  call set_desc_base
  mov $gate_target, %eax            /* call gate offset 15:0 and 31:16 */
  mov %ax, gdt + CGATE_SEL
  shr $16, %eax
  mov %ax, gdt + CGATE_SEL + 6
  mov $LDT_SEL, %ax
  lldt %ax
  mov $0x00000033, %eax             /* PE, MP, ET, NE */
  mov %eax, %cr0

  call test_cpl0
  call test_flags3
  call test_tables3
  call test_segs3
  call test_cpuid3
  call test_selectors
  call test_far3

  CHECKS_DONE "sensitive"

/* ---- CPL 0 ---- */
test_cpl0:
  pushf
  push $0x3202                      /* IOPL 3, IF 1 */
  popf
  pushf
  pop %eax
  popf
  CHECK_EQ $0x3202, "popf at cpl 0 sets iopl and if"
  mov $-1, %eax
  mov %cs, %eax
  CHECK_EQ $CODE_SEL, "mov cs at cpl 0"
  mov $-1, %eax
  smsw %eax
  and $0xffff, %eax
  CHECK_EQ $0x0033, "smsw at cpl 0"
  mov $-1, %eax
  str %eax
  CHECK_EQ $TSS_SEL, "str at cpl 0"
  mov $-1, %eax
  sldt %eax
  CHECK_EQ $LDT_SEL, "sldt at cpl 0"
  ret

/* ---- CPL 3: flags ---- */
test_flags3:
  USER_RUN u_pushf
  mov results + 0, %eax
  CHECK_EQ $0x246, "pushf at cpl 3 (if=1 iopl=0)"
  USER_RUN u_pushf, 0x3002
  mov results + 0, %eax
  CHECK_EQ $0x3046, "pushf at cpl 3 (if=0 iopl=3)"

  USER_RUN u_popf
  EXC_NONE "popf at cpl 3 iopl 0"
  mov results + 0, %eax
  CHECK_EQ $0x00240ad7, "popf at cpl 3 iopl 0 keeps if and iopl, sets arith, ac, id"
  USER_RUN u_popf_iopl3, 0x3202
  mov results + 0, %eax
  CHECK_EQ $0x38d7, "popf at cpl 3 iopl 3 clears if, keeps iopl"
  ret

u_pushf:
  cmp %eax, %eax                    /* ZF PF set; CF AF SF OF clear */
  pushf
  pop results + 0
  USER_RETURN
u_popf:
  EXC_ARM 1f
  push $0x002638d5                  /* ID AC VM, IOPL 3, IF 0, OF SF ZF AF PF CF */
  popf
  pushf
  pop results + 0
  push $0x202
  popf                              /* AC off again */
1:
  USER_RETURN
u_popf_iopl3:
  push $0x08d5                      /* IOPL 0, IF 0, OF SF ZF AF PF CF */
  popf
  pushf
  pop results + 0
  USER_RETURN

/* ---- CPL 3: descriptor-table registers and the machine status word ---- */
test_tables3:
  USER_RUN u_tables
  movzwl results + 0, %eax
  CHECK_EQ $gdt_end-gdt-1, "sgdt at cpl 3 limit"
  mov results + 2, %eax
  CHECK_EQ $gdt, "sgdt at cpl 3 base"
  movzwl results + 8, %eax
  CHECK_EQ $0x7ff, "sidt at cpl 3 limit"
  mov results + 10, %eax
  CHECK_EQ $exc_idt, "sidt at cpl 3 base"
  mov results + 16, %eax
  CHECK_EQ $LDT_SEL, "sldt at cpl 3"
  mov results + 20, %eax
  CHECK_EQ $TSS_SEL, "str at cpl 3"
  mov results + 24, %eax
  CHECK_EQ $0x0033, "smsw at cpl 3"
  movzwl results + 28, %eax
  CHECK_EQ $0x0033, "smsw to memory at cpl 3"
  ret

u_tables:
  sgdt results + 0
  sidt results + 8
  mov $-1, %eax
  sldt %eax
  mov %eax, results + 16
  mov $-1, %eax
  str %eax
  mov %eax, results + 20
  smsw %eax
  and $0xffff, %eax
  mov %eax, results + 24
  smsw results + 28
  USER_RETURN

/* ---- CPL 3: segment registers ---- */
test_segs3:
  USER_RUN u_segs
  EXC_NONE "segment register reads at cpl 3"
  mov results + 0, %eax
  CHECK_EQ $USER_CS, "mov cs at cpl 3"
  mov results + 4, %eax
  CHECK_EQ $USER_DS, "mov ss at cpl 3"
  mov results + 8, %eax
  CHECK_EQ $USER_DS, "mov ds at cpl 3"
  mov results + 12, %eax
  CHECK_EQ $4, "push cs at cpl 3 esp decrement"
  mov results + 16, %eax
  CHECK_EQ $USER_CS, "push cs at cpl 3 value"
  mov results + 20, %eax
  CHECK_EQ $USER_CS, "push cs, pop ds at cpl 3"
  mov results + 24, %eax
  CHECK_EQ $0x600dcafe, "read through ds = ring-3 code"
  ret

u_segs:
  EXC_ARM 1f
  mov $-1, %eax
  mov %cs, %eax
  mov %eax, results + 0
  mov $-1, %eax
  mov %ss, %eax
  mov %eax, results + 4
  mov $-1, %eax
  mov %ds, %eax
  mov %eax, results + 8
  mov %esp, %ebx
  push %cs
  sub %esp, %ebx
  mov %ebx, results + 12
  pop %eax
  and $0xffff, %eax                 /* bits 31:16 of the slot may be left unwritten */
  mov %eax, results + 16
  push %cs
  pop %ds                           /* readable code: a valid DS */
  mov $-1, %eax
  mov %ds, %eax
  mov probe_value, %ebx
  push %ss
  pop %ds
  mov %eax, results + 20
  mov %ebx, results + 24
1:
  USER_RETURN

/* ---- CPL 3: CPUID gives what CPL 0 sees ---- */
test_cpuid3:
  USER_RUN u_cpuid
  xor %eax, %eax
  cpuid
  push %edx
  mov %ebx, %edx
  mov results + 4, %eax
  CHECK "cpuid 0 ebx at cpl 3 = cpl 0"
  pop %edx
  mov results + 12, %eax
  CHECK "cpuid 0 edx at cpl 3 = cpl 0"
  mov $1, %eax
  cpuid
  mov %eax, %ebx
  mov %edx, %esi
  mov results + 16, %eax
  mov %ebx, %edx
  CHECK "cpuid 1 eax at cpl 3 = cpl 0"
  mov results + 28, %eax
  mov %esi, %edx
  CHECK "cpuid 1 edx at cpl 3 = cpl 0"
  ret

u_cpuid:
  xor %eax, %eax
  cpuid
  mov %eax, results + 0
  mov %ebx, results + 4
  mov %ecx, results + 8
  mov %edx, results + 12
  mov $1, %eax
  cpuid
  mov %eax, results + 16
  mov %ebx, results + 20
  mov %ecx, results + 24
  mov %edx, results + 28
  USER_RETURN

/* ---- LAR / LSL / VERR / VERW (Vol. 2A LAR, LSL; Vol. 2B VERR/VERW) ---- */
test_selectors:
  mov $table_cpl0, %esi
  mov $table_cpl0_end, %edi
  push %esi
  call sel_run
  pop %esi
  call sel_report
  mov $table_cpl3, %esi
  mov $table_cpl3_end, %edi
  USER_RUN u_sel_run
  call sel_report
  ret

u_sel_run:
  call sel_run
  USER_RETURN

/* sel_run: runs the table [ESI, EDI). Clobbers EAX, ECX, EDX, ESI. */
sel_run:
  cmp %edi, %esi
  jae 9f
  mov 4(%esi), %ecx
  mov $PRESET, %eax
  mov (%esi), %edx
  cmp $OP_LAR, %edx
  jne 2f
  lar %ecx, %eax
  jmp 5f
2:
  cmp $OP_LSL, %edx
  jne 3f
  lsl %ecx, %eax
  jmp 5f
3:
  cmp $OP_VERR, %edx
  jne 4f
  verr %cx
  jmp 5f
4:
  verw %cx
5:
  setz %dl
  movzbl %dl, %edx
  mov %edx, 20(%esi)
  mov %eax, 24(%esi)
  add $ENTRY_SIZE, %esi
  jmp sel_run
9:
  ret

/* sel_report: prints the table [ESI, EDI). Clobbers EAX, EDX, ESI. */
sel_report:
  cmp %edi, %esi
  jae 9f
  push %esi
  mov 16(%esi), %eax
  mov %eax, check_prefix
  mov 20(%esi), %eax
  mov 8(%esi), %edx
  CHECK "zf"
  cmpl $OP_VERR, (%esi)
  jae 8f
  mov 24(%esi), %eax
  cmpl $OP_LAR, (%esi)
  jne 7f
  cmpl $1, 20(%esi)
  jne 7f
  and $0x00f0ff00, %eax
7:
  mov 12(%esi), %edx
  CHECK "result"
8:
  movl $0, check_prefix
  pop %esi
  add $ENTRY_SIZE, %esi
  jmp sel_report
9:
  ret

/* ---- CPL 3: far transfers ---- */
test_far3:
  USER_RUN u_far_conforming
  EXC_NONE "far call to conforming dpl-0 code at cpl 3"
  mov results + 0, %eax
  CHECK_EQ $CONF_CODE0_SEL|3, "conforming code runs with cs rpl 3"
  mov results + 4, %eax
  CHECK_EQ $USER_CS, "conforming call pushed cs"
  mov results + 8, %eax
  CHECK_EQ $USER_CS, "cs after far ret from conforming code"

  USER_RUN u_far_jmp
  EXC_NONE "far jmp to ring-3 code at cpl 3"
  mov results + 0, %eax
  CHECK_EQ $USER_CS, "cs after far jmp at cpl 3"

  movl $USER_CS, exc_want_cs
  USER_RUN u_far_call0
  EXC_CHECK "#GP far call to dpl-0 code at cpl 3", 13, CODE_SEL, u_far_call0_f
  USER_RUN u_far_ret0
  EXC_CHECK "#GP far ret to cpl 0 at cpl 3", 13, CODE_SEL, u_far_ret0_f
  movl $CODE_SEL, exc_want_cs

  USER_RUN u_gate
  EXC_NONE "call gate from cpl 3 to cpl 0"
  mov gate_cs, %eax
  CHECK_EQ $CODE_SEL, "call gate target cs"
  mov gate_esp, %eax
  CHECK_EQ $ring3_kstack_top-20, "call gate target esp = esp0 - 20"
  mov gate_param, %eax
  CHECK_EQ $0x1234, "call gate parameter copied"
  mov gate_ret_cs, %eax
  CHECK_EQ $USER_CS, "call gate pushed cs"
  mov gate_ret_esp, %eax
  CHECK_EQ $ring3_ustack_top-4, "call gate pushed esp"
  mov gate_ret_ss, %eax
  CHECK_EQ $USER_DS, "call gate pushed ss"
  mov results + 0, %eax
  CHECK_EQ $ring3_ustack_top, "esp at cpl 3 after ret 4"
  mov results + 4, %eax
  CHECK_EQ $USER_CS, "cs at cpl 3 after ret 4"
  ret

u_far_conforming:
  EXC_ARM 1f
  lcall $CONF_CODE0_SEL, $conforming_target
  mov %cs, %eax
  mov %eax, results + 8
1:
  USER_RETURN
conforming_target:
  mov %cs, %eax
  mov %eax, results + 0
  movzwl 4(%esp), %eax
  mov %eax, results + 4
  lret

u_far_jmp:
  EXC_ARM 1f
  ljmp $USER_CS, $2f
2:
  mov %cs, %eax
  mov %eax, results + 0
1:
  USER_RETURN

u_far_call0:
  EXC_ARM 1f
u_far_call0_f:
  lcall $CODE_SEL, $2f
2:
1:
  USER_RETURN

u_far_ret0:
  EXC_ARM 1f
  push $CODE_SEL
  push $2f
u_far_ret0_f:
  lret
2:
1:
  mov $ring3_ustack_top, %esp
  USER_RETURN

u_gate:
  EXC_ARM 1f
  push $0x1234
  lcall $CGATE_SEL|3, $0
  mov %esp, results + 0
  mov %cs, %eax
  mov %eax, results + 4
1:
  USER_RETURN

/* Reached through the call gate at CPL 0 on the ring-0 stack: EIP, CS, param, ESP, SS. */
gate_target:
  mov %esp, gate_esp
  mov %cs, %eax
  mov %eax, gate_cs
  mov 8(%esp), %eax
  mov %eax, gate_param
  movzwl 4(%esp), %eax
  mov %eax, gate_ret_cs
  mov 12(%esp), %eax
  mov %eax, gate_ret_esp
  movzwl 16(%esp), %eax
  mov %eax, gate_ret_ss
  lret $4

.data
  .p2align 2
results:
  .skip 64
probe_value:
  .long 0x600dcafe
gate_esp: .long 0
gate_cs: .long 0
gate_param: .long 0
gate_ret_cs: .long 0
gate_ret_esp: .long 0
gate_ret_ss: .long 0

  .p2align 3
ldt:
  .quad 0, 0

  .p2align 3
gdt:
  GDT_STANDARD_ENTRIES
  SEG_DESC 0, 0x0000f, 0xe2, 0x0    /* 0x30: LDT, DPL 3 (base filled in) */
  .word 0, CODE_SEL, 0xec00, 0      /* 0x38: call gate, DPL 3, offset 0 */
  SEG_DESC 0, 0x12345, 0xf3, 0x4    /* 0x40: data, DPL 3, limit 0x12345 bytes */
  SEG_DESC 0, 0xfffff, 0xf9, 0xc    /* 0x48: execute-only code, DPL 3, accessed */
  SEG_DESC 0, 0xfffff, 0x9f, 0xc    /* 0x50: conforming readable code, DPL 0, accessed */
  SEG_DESC 0, 0xfffff, 0xf1, 0xc    /* 0x58: read-only data, DPL 3, accessed */
  .word 0, CODE_SEL, 0xee00, 0      /* 0x60: 32-bit interrupt gate, DPL 3 */
  .word 0, CODE_SEL, 0xec01, 0      /* 0x68: call gate, DPL 3, 1 parameter (offset filled in) */
  GDT_END

/* At CPL 0. The TSS is busy after LTR (type 0xb). */
table_cpl0:
  SEL_TEST OP_LAR, DATA_SEL, 1, 0x00c09300, "lar 0x10 (dpl-0 data) at cpl 0"
  SEL_TEST OP_LAR, TSS_SEL, 1, 0x00008b00, "lar 0x28 (busy tss) at cpl 0"
  SEL_TEST OP_LSL, TSS_SEL, 1, 0x67, "lsl 0x28 (tss) at cpl 0"
  SEL_TEST OP_LSL, CODE_SEL, 1, 0xffffffff, "lsl 0x08 (4 kib granular) at cpl 0"
  SEL_TEST OP_VERR, DATA_SEL, 1, 0, "verr 0x10 at cpl 0"
  SEL_TEST OP_VERW, DATA_SEL, 1, 0, "verw 0x10 at cpl 0"
  SEL_TEST OP_VERW, CODE_SEL, 0, 0, "verw 0x08 (code) at cpl 0"
table_cpl0_end:

/* At CPL 3, selectors with RPL 3. */
table_cpl3:
  SEL_TEST OP_LAR, USER_CS, 1, 0x00c0fb00, "lar 0x1b (ring-3 code) at cpl 3"
  SEL_TEST OP_LAR, USER_DS, 1, 0x00c0f300, "lar 0x23 (ring-3 data) at cpl 3"
  SEL_TEST OP_LAR, DATA_SEL|3, 0, PRESET, "lar 0x13 (dpl-0 data) at cpl 3"
  SEL_TEST OP_LAR, 0, 0, PRESET, "lar 0x00 (null) at cpl 3"
  SEL_TEST OP_LAR, BEYOND_SEL|3, 0, PRESET, "lar 0x103 (beyond the gdt) at cpl 3"
  SEL_TEST OP_LAR, TSS_SEL|3, 0, PRESET, "lar 0x2b (dpl-0 tss) at cpl 3"
  SEL_TEST OP_LAR, LDT_SEL|3, 1, 0x0000e200, "lar 0x33 (ldt) at cpl 3"
  SEL_TEST OP_LAR, CGATE0_SEL|3, 1, 0x0000ec00, "lar 0x3b (call gate) at cpl 3"
  SEL_TEST OP_LAR, XO_CODE3_SEL|3, 1, 0x00c0f900, "lar 0x4b (execute-only code) at cpl 3"
  SEL_TEST OP_LAR, CONF_CODE0_SEL|3, 1, 0x00c09f00, "lar 0x53 (conforming dpl-0 code) at cpl 3"
  SEL_TEST OP_LAR, IGATE_SEL|3, 0, PRESET, "lar 0x63 (interrupt gate) at cpl 3"
  SEL_TEST OP_LSL, USER_CS, 1, 0xffffffff, "lsl 0x1b at cpl 3"
  SEL_TEST OP_LSL, DATA_SMALL3_SEL|3, 1, 0x12345, "lsl 0x43 (byte granular) at cpl 3"
  SEL_TEST OP_LSL, LDT_SEL|3, 1, 0x0f, "lsl 0x33 (ldt) at cpl 3"
  SEL_TEST OP_LSL, DATA_SEL|3, 0, PRESET, "lsl 0x13 (dpl-0 data) at cpl 3"
  SEL_TEST OP_LSL, CGATE0_SEL|3, 0, PRESET, "lsl 0x3b (call gate) at cpl 3"
  SEL_TEST OP_LSL, 0, 0, PRESET, "lsl 0x00 (null) at cpl 3"
  SEL_TEST OP_VERR, USER_CS, 1, 0, "verr 0x1b (readable code) at cpl 3"
  SEL_TEST OP_VERR, USER_DS, 1, 0, "verr 0x23 (data) at cpl 3"
  SEL_TEST OP_VERR, XO_CODE3_SEL|3, 0, 0, "verr 0x4b (execute-only code) at cpl 3"
  SEL_TEST OP_VERR, CONF_CODE0_SEL|3, 1, 0, "verr 0x53 (conforming readable dpl-0 code) at cpl 3"
  SEL_TEST OP_VERR, DATA_SEL|3, 0, 0, "verr 0x13 (dpl-0 data) at cpl 3"
  SEL_TEST OP_VERR, TSS_SEL|3, 0, 0, "verr 0x2b (tss) at cpl 3"
  SEL_TEST OP_VERR, 0, 0, 0, "verr 0x00 (null) at cpl 3"
  SEL_TEST OP_VERW, USER_DS, 1, 0, "verw 0x23 (writable data) at cpl 3"
  SEL_TEST OP_VERW, RO_DATA3_SEL|3, 0, 0, "verw 0x5b (read-only data) at cpl 3"
  SEL_TEST OP_VERW, USER_CS, 0, 0, "verw 0x1b (code) at cpl 3"
  SEL_TEST OP_VERW, DATA_SEL|3, 0, 0, "verw 0x13 (dpl-0 data) at cpl 3"
table_cpl3_end:

EXCEPTION_SUPPORT
RING3_SUPPORT
