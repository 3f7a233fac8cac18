/* cpu_model: system-level behaviour that depends on the CPU model vmbt presents (CPUID) or on
 * the time-stamp counter being the guest's own. One line per check: "ok <what>" or "FAIL <what>
 * got 0x.. want 0x..". Exits with 0 when every check passed (status 1).
 *
 *  - CPUID.01H:EDX.PAE (bit 6) is 1 in the model, so MOV CR4 with PAE = 1 (paging off) is
 *    accepted and reads back (Vol. 3A §4.1.4: CR4.PAE may be set if CPUID.01H:EDX.PAE = 1), while
 *    CR4.VMXE (bit 13), whose CPUID feature (CPUID.01H:ECX.VMX) the model does not advertise, is
 *    reserved: MOV CR4 setting it raises #GP(0) (Intel SDM Vol. 2B MOV CR: "#GP(0) if an attempt
 *    is made to write a 1 to any reserved bit in CR4") and CR4 stays unchanged.
 *  - WRMSR of IA32_TIME_STAMP_COUNTER (MSR 0x10) sets the TSC: the next RDTSC reads the written
 *    value plus the ticks since (Vol. 3B §18.17 "Time-Stamp Counter").
 * kvm-pvm refuses KVM_SET_CPUID2, so the guest does not get the vmbt CPU model there. */
#include "guest.inc"

#define MSR_TSC 0x10

MULTIBOOT_HEADER

GUEST_ENTRY
  call exc_init
  movl $1, exc_no_iret

  mov $1, %eax
  cpuid
  mov %edx, %eax
  and $0x40, %eax
  CHECK_EQ $0x40, "cpuid 1 edx.pae is 1"
  mov $0x00000020, %eax             /* PAE, with paging off */
  mov %eax, %cr4
  mov %cr4, %eax
  CHECK_EQ $0x20, "cr4.pae reads back"
  xor %eax, %eax
  mov %eax, %cr4
  mov $0x00002000, %eax             /* VMXE: no VMX in the model */
  EXC_ARM 1f
0:
  mov %eax, %cr4
1:
  EXC_CHECK "#GP mov cr4.vmxe without vmx", 13, 0, 0b
  mov %cr4, %eax
  CHECK_EQ $0, "cr4 unchanged after #GP"

  mov $MSR_TSC, %ecx
  mov $0x1000, %eax
  xor %edx, %edx
  wrmsr
  rdtsc
  mov %eax, %ebx
  mov %edx, %eax
  CHECK_EQ $0, "rdtsc after wrmsr tsc: high half"
  xor %eax, %eax
  sub $0x1000, %ebx
  jb 1f                             /* below the written value */
  cmp $0x40000000, %ebx
  jae 1f                            /* implausibly far: more than 2^30 ticks later */
  mov $1, %eax
1:
  CHECK_EQ $1, "rdtsc after wrmsr tsc continues from the written value"

  CHECKS_DONE "cpu_model"

EXCEPTION_SUPPORT
