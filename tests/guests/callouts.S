/* callouts: the privileged and sensitive instructions a binary translator turns into monitor
 * callouts, each executed at CPL 0 with its architectural result checked (Intel SDM Vol. 2 for
 * each instruction, Vol. 3A ch. 2 for the system registers). One line per check: "ok <what>" or
 * "FAIL <what> got 0x.. want 0x..". Exits with 0 when every check passed (status 1).
 *
 *  - CLI/STI read back through PUSHF.
 *  - LGDT/LIDT then SGDT/SIDT give the loaded limit and base; segment loads use the new GDT;
 *    LIDT with a 16-bit operand size loads a 24-bit base (the high byte becomes 0).
 *  - LLDT then SLDT; a segment load through the LDT (TI = 1) uses the LDT descriptor's base;
 *    after LLDT 0 such a load raises #GP. LTR sets the TSS descriptor's busy bit (type 9 -> 0xb),
 *    STR reads the selector back; LTR of a busy TSS: #GP(selector).
 *  - LMSW loads PE, MP, EM, TS only and cannot clear PE; MOV CR0 read-back (ET reads 1 on the
 *    P6 family, WP/AM/CD/NW writable); CLTS clears TS; MOV CR2, CR3 read-back; CR4 TSD, PSE,
 *    PGE, OSFXSR, OSXMMEXCPT writable. (CR4.PAE and a WRMSR of the TSC are in cpu_model.S.)
 *  - MOV DR0-DR3, DR7 read-back (DR7 bit 10 reads 1), DR6 reserved bits read 1, DR4/DR5 are
 *    DR6/DR7 while CR4.DE = 0.
 *  - RDMSR/WRMSR of IA32_SYSENTER_CS/ESP/EIP round trip; an unimplemented MSR: #GP(0) for both;
 *    two RDTSCs increase.
 *  - INVD, WBINVD, INVLPG complete without exception and without changing memory or registers.
 *  - Far CALL (direct and through memory) / RET imm / far JMP to a second code segment whose
 *    base is 1 MiB: CS, the pushed return address, EIP-relative offsets within that segment.
 *  - SYSEXIT to CPL 3 (CS = SYSENTER_CS+16|3, SS = +24|3, EIP = EDX, ESP = ECX) and SYSENTER
 *    back to CPL 0 (CS, SS, ESP from the MSRs, IF cleared); SYSENTER/SYSEXIT with
 *    IA32_SYSENTER_CS = 0: #GP(0).
 *  - String port I/O: REP INSB from the UART scratch register with DF = 0 and 1, REP OUTSW and
 *    REP INSD on an unclaimed port (reads all ones): ECX, ESI/EDI after, the bytes stored.
 * Exceptions return with POPF+RET (exc_no_iret), never IRET, so kvm-pvm can run this guest. */
#include "guest.inc"

#define LDT_SEL 0x30            /* LDT (base filled in), limit 0x0f */
#define CODE2_SEL 0x38          /* 32-bit code, base 1 MiB */
#define MARK_SEL 0x40           /* data, base 0 here, base 0x10 in gdt2 */
#define LDT_DATA_SEL 0x0c       /* LDT entry 1, TI = 1: data whose base is filled in */
#define CODE2_BASE 0x100000

#define MSR_SYSENTER_CS 0x174
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_UNKNOWN 0x12345678

/* ECX = msr, EDX:EAX = value; clobbers nothing else. */
.macro WRMSR_IMM msr, lo, hi=0
  mov $(\msr), %ecx
  mov $(\lo), %eax
  mov $(\hi), %edx
  wrmsr
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT
  call exc_init
  movl $1, exc_no_iret
  mov $0xff, %al                    /* every PIC IRQ masked: STI is safe */
  outb %al, $0x21
  outb %al, $0xa1

  call test_if
  call test_descriptor_tables
  call test_ldt_tr
  call test_cr0
  call test_cr234
  call test_dr
  call test_msr
  call test_cache
  call test_sysenter
  call test_string_io
  call test_far                     /* last: a non-zero CS base may stop an engine */

  CHECKS_DONE "callouts"

test_if:
  sti
  pushf
  pop %eax
  and $0x200, %eax
  CHECK_EQ $0x200, "sti sets if"
  cli
  pushf
  pop %eax
  and $0x200, %eax
  CHECK_EQ $0, "cli clears if"
  ret

test_descriptor_tables:
  lgdt gdt2_desc
  sgdt saved_dtr
  movzwl saved_dtr, %eax
  CHECK_EQ $gdt2_end-gdt2-1, "lgdt/sgdt limit"
  mov saved_dtr + 2, %eax
  CHECK_EQ $gdt2, "lgdt/sgdt base"
  mov $MARK_SEL, %ax
  mov %ax, %gs
  mov %gs:marker - 0x10, %eax       /* gdt2's MARK_SEL has base 0x10 */
  CHECK_EQ $0x4d41524b, "segment load uses the new gdt"
  lgdt gdt_desc
  mov $MARK_SEL, %ax
  mov %ax, %gs
  mov %gs:marker, %eax              /* base 0 again */
  CHECK_EQ $0x4d41524b, "segment load uses the old gdt again"
  xor %eax, %eax
  mov %ax, %gs

  lidt idt_test_desc
  sidt saved_dtr
  lidt exc_idt_desc
  movzwl saved_dtr, %eax
  CHECK_EQ $0x3ff, "lidt/sidt limit"
  mov saved_dtr + 2, %eax
  CHECK_EQ $0xab123456, "lidt/sidt base"
  data16 lidt idt_test_desc         /* 16-bit operand size: 24-bit base */
  sidt saved_dtr
  lidt exc_idt_desc
  mov saved_dtr + 2, %eax
  CHECK_EQ $0x00123456, "lidt with 16-bit operand size loads a 24-bit base"
  ret

test_ldt_tr:
  mov $gdt + LDT_SEL, %edi
  mov $ldt, %eax
  call set_desc_base
  mov $ldt + LDT_DATA_SEL - 4, %edi
  mov $marker - 0x20, %eax
  call set_desc_base
  mov $LDT_SEL, %ax
  lldt %ax
  mov $-1, %eax
  sldt %eax
  CHECK_EQ $LDT_SEL, "lldt/sldt"
  mov $LDT_DATA_SEL, %ax
  mov %ax, %fs
  mov %fs:0x20, %eax
  CHECK_EQ $0x4d41524b, "segment load through the ldt"
  xor %eax, %eax
  mov %ax, %fs
  lldt %ax
  sldt %eax
  CHECK_EQ $0, "lldt 0/sldt"
  mov $LDT_DATA_SEL, %ax
  EXC_ARM 1f
0:
  mov %ax, %fs
1:
  EXC_CHECK "#GP ldt selector after lldt 0", 13, NOERR, 0b
  xor %eax, %eax
  mov %ax, %fs

  mov $gdt + TSS_SEL, %edi
  mov $ring3_tss, %eax
  call set_desc_base
  movzbl gdt + TSS_SEL + 5, %eax
  CHECK_EQ $0x89, "tss descriptor available before ltr"
  mov $TSS_SEL, %ax
  ltr %ax
  movzbl gdt + TSS_SEL + 5, %eax
  CHECK_EQ $0x8b, "ltr sets the busy bit"
  mov $-1, %eax
  str %eax
  CHECK_EQ $TSS_SEL, "str"
  mov $TSS_SEL, %ax
  EXC_ARM 1f
0:
  ltr %ax
1:
  EXC_CHECK "#GP ltr of a busy tss", 13, TSS_SEL, 0b
  ret

/* CR0 (Vol. 3A §2.5; Vol. 2B LMSW: "only the low-order 4 bits of the source operand (PE, MP,
 * EM, TS) are loaded ... if the PE flag is set, LMSW cannot clear it"). */
test_cr0:
  mov $0x00000033, %eax             /* PE MP ET NE */
  mov %eax, %cr0
  mov %cr0, %eax
  CHECK_EQ $0x00000033, "mov cr0 read-back"
  mov $0x00000023, %eax             /* ET = 0 */
  mov %eax, %cr0
  mov %cr0, %eax
  CHECK_EQ $0x00000033, "mov cr0: et reads 1"
  mov $0x60050033, %eax             /* CD NW AM WP */
  mov %eax, %cr0
  mov %cr0, %eax
  CHECK_EQ $0x60050033, "mov cr0 cd nw am wp read-back"
  mov $0x00000033, %eax
  mov %eax, %cr0

  xor %eax, %eax
  lmsw %ax
  mov %cr0, %eax
  CHECK_EQ $0x00000031, "lmsw 0 clears mp, cannot clear pe"
  mov $0x000e, %eax
  lmsw %ax
  mov %cr0, %eax
  CHECK_EQ $0x0000003f, "lmsw 0xe sets mp em ts"
  mov $0xfff0, %eax
  lmsw %ax
  mov %cr0, %eax
  CHECK_EQ $0x00000031, "lmsw 0xfff0 loads bits 3:0 only"
  mov $0x0002, %eax
  lmsw %ax
  mov %cr0, %eax
  CHECK_EQ $0x00000033, "lmsw 2 sets mp"
  smsw %eax
  and $0xffff, %eax
  CHECK_EQ $0x0033, "smsw"

  mov %cr0, %eax
  or $0x8, %eax
  mov %eax, %cr0
  clts
  mov %cr0, %eax
  CHECK_EQ $0x00000033, "clts clears ts"
  ret

test_cr234:
  mov $0x12345678, %eax
  mov %eax, %cr2
  xor %eax, %eax
  mov %cr2, %eax
  CHECK_EQ $0x12345678, "mov cr2 read-back"
  mov $0x00123000, %eax
  mov %eax, %cr3
  xor %eax, %eax
  mov %cr3, %eax
  CHECK_EQ $0x00123000, "mov cr3 read-back"
  mov $0x00456018, %eax             /* PCD PWT */
  mov %eax, %cr3
  xor %eax, %eax
  mov %cr3, %eax
  CHECK_EQ $0x00456018, "mov cr3 pcd pwt read-back"
  xor %eax, %eax
  mov %eax, %cr3

  mov $0x00000694, %eax             /* OSXMMEXCPT OSFXSR PGE PSE TSD */
  mov %eax, %cr4
  xor %eax, %eax
  mov %cr4, %eax
  CHECK_EQ $0x00000694, "mov cr4 tsd pse pge osfxsr osxmmexcpt read-back"
  xor %eax, %eax
  mov %eax, %cr4
  ret

/* Vol. 3A §17.2: DR7 bit 10 and DR6 bits 4-11, 16-31 are reserved and read 1; with CR4.DE = 0,
 * DR4 and DR5 are aliases of DR6 and DR7. No breakpoint is enabled (L0-L3, G0-G3 stay 0). */
test_dr:
  mov $0x11111111, %eax
  mov %eax, %dr0
  mov $0x22222222, %eax
  mov %eax, %dr1
  mov $0x33333333, %eax
  mov %eax, %dr2
  mov $0x44444444, %eax
  mov %eax, %dr3
  mov %dr0, %eax
  CHECK_EQ $0x11111111, "mov dr0 read-back"
  mov %dr1, %eax
  CHECK_EQ $0x22222222, "mov dr1 read-back"
  mov %dr2, %eax
  CHECK_EQ $0x33333333, "mov dr2 read-back"
  mov %dr3, %eax
  CHECK_EQ $0x44444444, "mov dr3 read-back"
  mov $0x000f0000, %eax             /* R/W0 = 11, LEN0 = 11, not enabled */
  mov %eax, %dr7
  mov %dr7, %eax
  CHECK_EQ $0x000f0400, "mov dr7 read-back (bit 10 reads 1)"
  mov %dr5, %eax
  CHECK_EQ $0x000f0400, "mov dr5 is dr7 with cr4.de=0"
  xor %eax, %eax
  mov %eax, %dr6
  mov %dr6, %eax
  CHECK_EQ $0xffff0ff0, "mov dr6 reserved bits read 1"
  mov %dr4, %eax
  CHECK_EQ $0xffff0ff0, "mov dr4 is dr6 with cr4.de=0"
  mov $0x00000400, %eax
  mov %eax, %dr7
  ret

test_msr:
  WRMSR_IMM MSR_SYSENTER_CS, 0x0000abc8
  WRMSR_IMM MSR_SYSENTER_ESP, 0x12345678
  WRMSR_IMM MSR_SYSENTER_EIP, 0x9abcdef0
  mov $MSR_SYSENTER_CS, %ecx
  mov $-1, %edx
  rdmsr
  CHECK_EQ $0x0000abc8, "sysenter_cs msr round trip"
  mov $MSR_SYSENTER_CS, %ecx
  mov $-1, %edx
  rdmsr
  mov %edx, %eax
  CHECK_EQ $0, "sysenter_cs msr edx"
  mov $MSR_SYSENTER_ESP, %ecx
  rdmsr
  CHECK_EQ $0x12345678, "sysenter_esp msr round trip"
  mov $MSR_SYSENTER_EIP, %ecx
  rdmsr
  CHECK_EQ $0x9abcdef0, "sysenter_eip msr round trip"

  mov $MSR_UNKNOWN, %ecx
  EXC_ARM 1f
0:
  rdmsr
1:
  EXC_CHECK "#GP rdmsr of an unimplemented msr", 13, 0, 0b
  mov $MSR_UNKNOWN, %ecx
  xor %eax, %eax
  xor %edx, %edx
  EXC_ARM 1f
0:
  wrmsr
1:
  EXC_CHECK "#GP wrmsr of an unimplemented msr", 13, 0, 0b

  rdtsc
  mov %eax, tsc1
  mov %edx, tsc1 + 4
  rdtsc
  sub tsc1, %eax
  sbb tsc1 + 4, %edx                /* EDX:EAX = second - first */
  mov $0, %ecx
  jc 1f                             /* negative: went backwards */
  or %eax, %edx
  jz 1f                             /* equal */
  mov $1, %ecx
1:
  mov %ecx, %eax
  CHECK_EQ $1, "rdtsc increases"

  ret

test_cache:
  movl $0x5a5a5a5a, cache_probe
  mov $0x1234, %eax
  mov $cache_probe, %ebx
  EXC_ARM 1f
  wbinvd
  invlpg (%ebx)
  invd
1:
  EXC_NONE "wbinvd invlpg invd"
  CHECK_EQ $0x1234, "wbinvd invlpg invd keep eax"
  mov cache_probe, %eax
  CHECK_EQ $0x5a5a5a5a, "memory unchanged after wbinvd"
  ret

/* A second code segment with base 1 MiB (= CODE2_BASE): its offsets are linear - CODE2_BASE. */
test_far:
  push $0x11
  push $0x22
  mov %esp, %ebp
  lcall $CODE2_SEL, $far_target - CODE2_BASE
far_return:
  lea 8(%ebp), %eax
  mov %esp, %edx
  CHECK "far call, ret 8: esp"
  mov %cs, %eax
  CHECK_EQ $CODE_SEL, "cs after far ret"
  mov far_cs, %eax
  CHECK_EQ $CODE2_SEL, "far call target cs"
  mov far_ret_eip, %eax
  CHECK_EQ $far_return, "far call pushed eip"
  mov far_ret_cs, %eax
  CHECK_EQ $CODE_SEL, "far call pushed cs"
  mov far_param, %eax
  CHECK_EQ $0x22, "far call parameter at esp+8"
  mov far_near_eip, %eax
  CHECK_EQ $far_near-CODE2_BASE, "near call in the second segment pushes its offset"

  movl $0, far_cs
  lcall *far_pointer
  mov far_cs, %eax
  CHECK_EQ $CODE2_SEL, "far call through memory"

  ljmp $CODE2_SEL, $far_jmp_target - CODE2_BASE
far_jmp_back:
  mov far_cs, %eax
  CHECK_EQ $CODE2_SEL, "far jmp target cs"
  mov %cs, %eax
  CHECK_EQ $CODE_SEL, "cs after far jmp back"
  ret

far_target:
  mov %cs, %eax
  mov %eax, far_cs
  mov (%esp), %eax
  mov %eax, far_ret_eip
  movzwl 4(%esp), %eax
  mov %eax, far_ret_cs
  mov 8(%esp), %eax
  mov %eax, far_param
  call far_near
far_near:
  pop %eax
  mov %eax, far_near_eip
  lret $8

far_target_plain:
  mov %cs, %eax
  mov %eax, far_cs
  lret

far_jmp_target:
  mov %cs, %eax
  mov %eax, far_cs
  ljmp $CODE_SEL, $far_jmp_back

/* SYSENTER/SYSEXIT (Vol. 2B): the selectors come from IA32_SYSENTER_CS = CODE_SEL. */
test_sysenter:
  WRMSR_IMM MSR_SYSENTER_CS, CODE_SEL
  WRMSR_IMM MSR_SYSENTER_ESP, ring3_kstack_top
  WRMSR_IMM MSR_SYSENTER_EIP, sysenter_entry
  mov %esp, sys_saved_esp
  mov $ring3_ustack_top - 12, %ecx
  mov $sys_user, %edx
  sti                               /* IF = 1 at CPL 3 (SYSEXIT does not change it) */
  sysexit
sys_user:
  mov %cs, %eax
  mov %eax, sys_user_cs
  mov %ss, %eax
  mov %eax, sys_user_ss
  mov %esp, sys_user_esp
  sysenter
sysenter_entry:
  pushf
  pop sys_entry_eflags
  mov %esp, sys_entry_esp
  mov %cs, %eax
  mov %eax, sys_entry_cs
  mov %ss, %eax
  mov %eax, sys_entry_ss
  mov sys_saved_esp, %esp
  mov sys_user_cs, %eax
  CHECK_EQ $USER_CS, "sysexit cs = sysenter_cs + 16 | 3"
  mov sys_user_ss, %eax
  CHECK_EQ $USER_DS, "sysexit ss = sysenter_cs + 24 | 3"
  mov sys_user_esp, %eax
  CHECK_EQ $ring3_ustack_top-12, "sysexit esp = ecx"
  mov sys_entry_cs, %eax
  CHECK_EQ $CODE_SEL, "sysenter cs"
  mov sys_entry_ss, %eax
  CHECK_EQ $DATA_SEL, "sysenter ss = sysenter_cs + 8"
  mov sys_entry_esp, %eax
  CHECK_EQ $ring3_kstack_top, "sysenter esp = sysenter_esp"
  mov sys_entry_eflags, %eax
  and $0x200, %eax
  CHECK_EQ $0, "sysenter clears if"

  WRMSR_IMM MSR_SYSENTER_CS, 0
  EXC_ARM 1f
0:
  sysenter
1:
  EXC_CHECK "#GP sysenter with sysenter_cs 0", 13, 0, 0b
  EXC_ARM 1f
0:
  sysexit
1:
  EXC_CHECK "#GP sysexit with sysenter_cs 0", 13, 0, 0b
  ret

#define UART_SCR (COM1 + 7)
#define UNCLAIMED_PORT 0x2e0

test_string_io:
  mov $UART_SCR, %dx
  mov $0xa5, %al
  outb %al, %dx
  movl $0, io_buf
  movl $0, io_buf + 4
  mov $io_buf, %edi
  mov $3, %ecx
  rep insb
  mov io_buf, %eax
  CHECK_EQ $0x00a5a5a5, "rep insb df=0 bytes"
  mov %edi, %eax
  CHECK_EQ $io_buf+3, "rep insb df=0 edi"
  mov %ecx, %eax
  CHECK_EQ $0, "rep insb ecx"

  mov $UART_SCR, %dx                /* CHECK_EQ clobbered EDX */
  mov $0x3c, %al
  outb %al, %dx
  mov $io_buf + 6, %edi
  mov $2, %ecx
  std
  rep insb
  cld
  mov io_buf + 4, %eax
  CHECK_EQ $0x003c3c00, "rep insb df=1 bytes"
  mov %edi, %eax
  CHECK_EQ $io_buf+4, "rep insb df=1 edi"

  mov $UART_SCR, %dx
  mov $io_buf, %esi
  mov $1, %ecx
  rep outsb                         /* byte 0xa5 to the scratch register */
  inb %dx, %al
  movzbl %al, %eax
  CHECK_EQ $0xa5, "rep outsb to the scratch register"

  mov $UNCLAIMED_PORT, %dx
  mov $io_buf, %esi
  mov $3, %ecx
  rep outsw
  mov %esi, %eax
  CHECK_EQ $io_buf+6, "rep outsw esi"
  movl $0, io_buf
  movl $0, io_buf + 4
  movl $0, io_buf + 8
  mov $io_buf, %edi
  mov $2, %ecx
  rep insl
  mov %edi, %eax
  CHECK_EQ $io_buf+8, "rep insd edi"
  mov io_buf + 4, %eax
  CHECK_EQ $0xffffffff, "rep insd from an unclaimed port"
  mov io_buf + 8, %eax
  CHECK_EQ $0, "rep insd stops after ecx dwords"
  ret

.data
  .p2align 2
saved_dtr: .skip 8
marker: .long 0x4d41524b           /* "KRAM" */
tsc1: .long 0, 0
cache_probe: .long 0
far_cs: .long 0
far_ret_eip: .long 0
far_ret_cs: .long 0
far_param: .long 0
far_near_eip: .long 0
far_pointer:
  .long far_target_plain - CODE2_BASE
  .word CODE2_SEL
  .p2align 2
sys_saved_esp: .long 0
sys_user_cs: .long 0
sys_user_ss: .long 0
sys_user_esp: .long 0
sys_entry_eflags: .long 0
sys_entry_esp: .long 0
sys_entry_cs: .long 0
sys_entry_ss: .long 0
io_buf: .skip 16
idt_test_desc:
  .word 0x3ff
  .long 0xab123456

  .p2align 3
ldt:
  .quad 0
  SEG_DESC 0, 0xfffff, 0x93, 0xc    /* LDT 0x0c: data (base filled in) */

  .p2align 3
gdt:
  GDT_STANDARD_ENTRIES
  SEG_DESC 0, 0x0000f, 0x82, 0x0    /* 0x30: LDT (base filled in) */
  SEG_DESC CODE2_BASE, 0xfffff, 0x9b, 0xc  /* 0x38: code, base 1 MiB */
  SEG_DESC 0, 0xfffff, 0x93, 0xc    /* 0x40: data, base 0 */
  GDT_END

  .p2align 3
gdt2:                               /* as gdt but MARK_SEL has base 0x10, one more entry */
  GDT_STANDARD_ENTRIES
  .quad 0
  SEG_DESC CODE2_BASE, 0xfffff, 0x9b, 0xc
  SEG_DESC 0x10, 0xfffff, 0x93, 0xc
  .quad 0
gdt2_end:
  .p2align 2
gdt2_desc:
  .word gdt2_end - gdt2 - 1
  .long gdt2

EXCEPTION_SUPPORT
RING3_SUPPORT
