/*
 * suite_boot.S - the platform accesses a Multiboot system-test suite makes before its first test
 * (kvm-unit-tests' x86 start-up, for example), in that order, each against the SDM or the device's
 * documentation: 4 MiB identity paging with global PDEs and CR4.PGE off; IA32_APIC_BASE read
 * (0xFEE00900 on the BSP) and the APIC ID from the register page through paging; LTR; the APIC
 * globally disabled and enabled again (IA32_APIC_BASE.EN), SPIV enable; both 8259s masked by OCW1
 * alone; the real-mode trampoline page at physical 0 written; INIT and SIPI to all excluding self
 * (nobody), the ICR's delivery status polled idle before each; the CPU count from fw_cfg key 0x05;
 * a #UD fixed up by its handler; a fixed IPI to APIC ID 0 (physical) taken and EOIed; the run
 * ended by a 32-bit write to port 0xf4.
 */
#include "guest.inc"

#define APIC 0xfee00000
#define ICR_BUSY (1 << 12)

MULTIBOOT_HEADER
EXCEPTION_SUPPORT

/* Waits (bounded) for the ICR's delivery status to read idle; counts a timeout as a failure. */
.macro WAIT_ICR_IDLE name
  mov $100000, %ecx
8790:
  testl $ICR_BUSY, APIC + 0x300
  jz 8791f
  loop 8790b
8791:
  xor %eax, %eax
  test %ecx, %ecx
  setnz %al
  CHECK_EQ $1, "\name"
.endm

GUEST_ENTRY
  /* 4 MiB identity paging of all 4 GiB: P RW US A D PS G, as the suite builds it. */
  mov $page_dir, %edi
  xor %eax, %eax
  mov $0x1e7, %edx
1:
  mov %edx, (%edi,%eax,4)
  add $0x400000, %edx
  inc %eax
  cmp $1024, %eax
  jb 1b
  mov $0x10, %eax                /* CR4 = PSE only */
  mov %eax, %cr4
  mov $page_dir, %eax
  mov %eax, %cr3
  mov %cr0, %eax
  or $0x80000001, %eax
  mov %eax, %cr0
  LOAD_GDT
  call exc_init

  mov $0x1b, %ecx
  rdmsr
  CHECK_EQ $0xfee00900, "ia32_apic_base at reset"
  mov APIC + 0x20, %eax
  shr $24, %eax
  CHECK_EQ $0, "apic id through paging"
  mov $tss, %eax
  lea gdt + 0x18, %edi
  call set_desc_base
  mov $0x18, %ax
  ltr %ax

  /* The APIC off and on again through IA32_APIC_BASE, then software-enabled. */
  mov $0x1b, %ecx
  rdmsr
  and $~0xc00, %eax              /* EN and EXTD clear */
  wrmsr
  rdmsr
  CHECK_EQ $0xfee00100, "apic globally disabled"
  or $0x800, %eax
  xor %edx, %edx                 /* (CHECK_EQ took EDX) */
  wrmsr
  movl $0x1ff, APIC + 0xf0
  mov APIC + 0xf0, %eax
  CHECK_EQ $0x1ff, "spiv enabled"

  mov $0xff, %al                 /* OCW1 to uninitialized 8259s */
  outb %al, $0x21
  outb %al, $0xa1
  inb $0x21, %al
  movzbl %al, %eax
  CHECK_EQ $0xff, "master 8259 masked"

  /* The trampoline page at physical 0 (the guest's own RAM, through the identity map). */
  xor %edi, %edi
  mov $0xcc, %al
  mov $4096, %ecx
  rep stosb
  movl $0xfeedf00d, 0x10
  mov 0x10, %eax
  CHECK_EQ $0xfeedf00d, "trampoline page written"

  WAIT_ICR_IDLE "icr idle before init"
  movl $0, APIC + 0x310
  movl $0x000c4500, APIC + 0x300 /* INIT, assert, all excluding self */
  WAIT_ICR_IDLE "icr idle before sipi"
  movl $0x000c0600, APIC + 0x300 /* SIPI vector 0, all excluding self */
  WAIT_ICR_IDLE "icr idle after sipi"

  mov $0x0005, %ax               /* fw_cfg: number of CPUs, little-endian */
  mov $0x510, %dx
  outw %ax, %dx
  inc %dx
  inb %dx, %al
  movzbl %al, %ebx
  inb %dx, %al
  movzbl %al, %eax
  shl $8, %eax
  or %ebx, %eax
  CHECK_EQ $1, "fw_cfg cpu count"

  EXC_ARM 1f
  ud2
1:
  EXC_CHECK "ud2 fixed up", 6, NOERR, ANY

  mov $0x20, %eax
  mov $ipi_handler, %ebx
  mov $GATE_INTR32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
  movl $0, APIC + 0x310          /* destination APIC ID 0 */
  movl $0x4020, APIC + 0x300     /* fixed, assert, vector 0x20, physical */
  sti
  nop
  cli
  mov ipi_seen, %eax
  CHECK_EQ $1, "fixed ipi to apic id 0"
  mov APIC + 0x100 + 0x10, %eax  /* ISR bits 32-63 */
  CHECK_EQ $0, "ipi retired by eoi"

  cmpl $0, check_failures
  jne 2f
  mov $.Lpass, %esi
  call puts
  xor %eax, %eax
  outl %eax, $DEBUG_EXIT_PORT    /* a 32-bit write, as the suite's exit() does */
2:
  EXIT(1)

ipi_handler:
  incl ipi_seen
  movl $0, APIC + 0xb0
  iret

.section .rodata
.Lpass: .asciz "suite_boot: all checks passed\n"
.data
  .p2align 3
gdt:
  GDT_FLAT_ENTRIES               /* 0x08 code, 0x10 data */
  SEG_DESC 0, 0x67, 0x89, 0      /* 0x18 TSS */
  GDT_END
ipi_seen: .long 0
  .p2align 4
tss: .skip 104
.bss
  .p2align 12
page_dir: .skip 4096
