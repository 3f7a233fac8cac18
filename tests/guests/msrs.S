/*
 * msrs.S - the platform MSRs of the vmbt CPU model as Intel SDM Vol. 4 defines them (the table in
 * vmm/msr_model.h): values at reset, the bits a write may change, #GP(0) for reserved bits and for
 * MSRs the model does not implement, and IA32_APIC_BASE: a global disable hides the APIC page and
 * CPUID.1:EDX.APIC (SDM Vol. 3A §11.4.3), a new base moves the page.
 */
#include "guest.inc"

/* Checks bit `bit` of CPUID.`leaf`:EDX (`set` 1 or 0), asked at cpuid_site. */
.macro CPUID_EDX_BIT leaf, bit, set, name
  mov $\leaf, %eax
  call cpuid_site
  mov %edx, %eax
  shr $\bit, %eax
  and $1, %eax
  CHECK_EQ $\set, "\name"
.endm

#define APIC_BASE_MSR 0x1b
#define NEW_BASE 0xfed40000

MULTIBOOT_HEADER
EXCEPTION_SUPPORT

/* EDX:EAX = MSR `index`. */
.macro READ_MSR index
  mov $(\index), %ecx
  rdmsr
.endm
/* MSR `index` = hi:lo. */
.macro WRITE_MSR index, hi, lo
  mov $(\index), %ecx
  mov $(\hi), %edx
  mov $(\lo), %eax
  wrmsr
.endm
/* RDMSR of `index` must raise #GP(0). */
.macro RDMSR_GP index, name
  EXC_ARM 8772f
  mov $(\index), %ecx
  rdmsr
8772:
  EXC_CHECK "\name", 13, 0, ANY
.endm
/* WRMSR of hi:lo to `index` must raise #GP(0). */
.macro WRMSR_GP index, hi, lo, name
  EXC_ARM 8773f
  WRITE_MSR \index, \hi, \lo
8773:
  EXC_CHECK "\name", 13, 0, ANY
.endm

GUEST_ENTRY
  call exc_init

  READ_MSR 0xfe
  CHECK_EQ $0x508, "mtrrcap vcnt 8 fix wc"
  READ_MSR 0x2ff
  CHECK_EQ $0xc06, "mtrr def type enabled write-back"
  READ_MSR 0x277
  mov %edx, %ebx                 /* CHECK_EQ takes EDX */
  CHECK_EQ $0x00070406, "pat reset low"
  mov %ebx, %eax
  CHECK_EQ $0x00070406, "pat reset high"
  WRITE_MSR 0x277, 0, 0x07070707
  READ_MSR 0x277
  CHECK_EQ $0x07070707, "pat reads back"
  WRMSR_GP 0x277, 0, 0x02, "pat reserved type 2"
  WRMSR_GP 0x2ff, 0, 0xc02, "mtrr def type reserved type 2"
  WRMSR_GP 0x201, 0x10, 0x800, "mtrr physmask above maxphyaddr"
  WRMSR_GP 0xfe, 0, 0x508, "mtrrcap is read-only"

  /* IA32_MISC_ENABLE: bits 0, 3, 16, 18, 22, 23, 34 read back; 7, 11, 12 are fixed. */
  READ_MSR 0x1a0
  CHECK_EQ $0x1801, "misc enable at reset"
  /* Leaf 0x80000001 answered once before XD_DISABLE is set: bt keeps answers in translated code
   * (one CPUID site, cpuid_site, for every leaf below) and must forget this one. */
  mov $0x80000001, %eax
  call cpuid_site
  WRITE_MSR 0x1a0, 0x4, 0x00c51809
  READ_MSR 0x1a0
  mov %edx, %ebx
  CHECK_EQ $0x00c51809, "misc enable low reads back"
  mov %ebx, %eax
  CHECK_EQ $0x4, "misc enable high reads back"
  /* XD_DISABLE (bit 34) hides NX (CPUID.80000001H:EDX[20]). */
  CPUID_EDX_BIT 0x80000001, 20, 0, "xd disable hides nx"
  WRITE_MSR 0x1a0, 0, 0x1801
  CPUID_EDX_BIT 0x80000001, 20, 1, "nx advertised"
  WRMSR_GP 0x1a0, 0, 0x1001, "misc enable read-only bit 11"

  /* IA32_EFER exists with NX: SCE and NXE read back, LME (no 64-bit mode) is refused. */
  READ_MSR 0xc0000080
  CHECK_EQ $0, "efer at reset"
  WRITE_MSR 0xc0000080, 0, 0x801
  READ_MSR 0xc0000080
  CHECK_EQ $0x801, "efer sce nxe read back"
  WRMSR_GP 0xc0000080, 0, 0x100, "efer lme"
  WRITE_MSR 0xc0000080, 0, 0

  READ_MSR 0x179
  CHECK_EQ $0, "mcg cap no banks"
  RDMSR_GP 0x400, "mc0 ctl absent"
  RDMSR_GP 0x3b, "tsc adjust absent"
  RDMSR_GP 0x3a, "feature control absent"
  RDMSR_GP 0x802, "x2apic id absent in xapic mode"
  RDMSR_GP 0xc0000082, "lstar absent"
  RDMSR_GP 0x49, "pred cmd absent"

  /* IA32_APIC_BASE. */
  READ_MSR APIC_BASE_MSR
  CHECK_EQ $0xfee00900, "apic base bsp enabled"
  WRMSR_GP APIC_BASE_MSR, 0, 0xfee00901, "apic base reserved bit 0"
  WRMSR_GP APIC_BASE_MSR, 0, 0xfee00d00, "apic base extd without x2apic"
  WRMSR_GP APIC_BASE_MSR, 1, 0xfee00900, "apic base above maxphyaddr"
  CPUID_EDX_BIT 1, 9, 1, "cpuid apic bit while enabled"
  WRITE_MSR APIC_BASE_MSR, 0, 0xfee00100
  CPUID_EDX_BIT 1, 9, 0, "cpuid apic bit clear while disabled"
  mov 0xfee00030, %eax
  CHECK_EQ $0xffffffff, "apic page gone while disabled"
  WRITE_MSR APIC_BASE_MSR, 0, (NEW_BASE | 0x900)
  mov NEW_BASE + 0x30, %eax
  CHECK_EQ $0x00050014, "apic version at the new base"
  mov 0xfee00030, %eax
  CHECK_EQ $0xffffffff, "old base empty"
  CPUID_EDX_BIT 1, 9, 1, "cpuid apic bit back"
  WRITE_MSR APIC_BASE_MSR, 0, 0xfee00900
  mov 0xfee00030, %eax
  CHECK_EQ $0x00050014, "apic version back at 0xfee00000"

  CHECKS_DONE "msrs"

/* The one CPUID instruction the checks above use, so a leaf answered before an MSR write is
 * asked again at the same place after it. */
cpuid_site:
  cpuid
  ret
