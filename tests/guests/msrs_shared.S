/*
 * msrs_shared.S - the platform MSRs (vmm/msr_model.h) answer the same on both engines and stay
 * with the guest when it moves between them: the kvm engine sends the guest's RDMSR/WRMSR of every
 * MSR but TSC and SYSENTER to the same model bt uses (KVM_X86_SET_MSR_FILTER). No exceptions and
 * no paging, so it runs on kvm-pvm too. The values read are the SDM's (Vol. 4 Table 2-2 and the
 * model's reset state); then PAT and MTRR_PHYSBASE0 are written with a new value on every pass
 * of a loop and read back at once and on the next pass: under `switch` the guest changes engine
 * every millisecond, between the write and the reads.
 */
#include "guest.inc"

#define PASSES 4000

MULTIBOOT_HEADER

/* EDX:EAX = MSR `index`. */
.macro READ_MSR index
  mov $(\index), %ecx
  rdmsr
.endm

GUEST_ENTRY
  READ_MSR 0xfe
  CHECK_EQ $0x508, "mtrrcap vcnt 8 fix wc"
  READ_MSR 0x17
  CHECK_EQ $0, "platform id 0"
  READ_MSR 0x8b
  CHECK_EQ $0, "bios sign id 0"
  READ_MSR 0x1a0
  CHECK_EQ $0x1801, "misc enable at reset"
  READ_MSR 0x2ff
  CHECK_EQ $0xc06, "mtrr def type enabled write-back"
  READ_MSR 0x277
  mov %edx, %ebx
  CHECK_EQ $0x00070406, "pat reset low"
  mov %ebx, %eax
  CHECK_EQ $0x00070406, "pat reset high"
  READ_MSR 0xc0000080
  CHECK_EQ $0, "efer at reset"

  /* EDI counts values that did not read back; ESI is the pass. PAT's byte 0 cycles through the
   * valid types 0, 1, 4, 5, 6, 7 (the rest stay at reset); PHYSBASE0 = pass << 12 | 6 (WB). */
  xor %edi, %edi
  xor %esi, %esi
1:
  mov %esi, %eax
  xor %edx, %edx
  mov $6, %ecx
  div %ecx                      /* EDX = pass % 6 */
  movzbl pat_types(%edx), %eax
  or $0x00070400, %eax
  mov $0x00070406, %edx
  mov %eax, %ebx                /* EBX = the PAT low word written */
  mov $0x277, %ecx
  wrmsr
  mov %esi, %eax
  shl $12, %eax
  or $6, %eax
  xor %edx, %edx
  mov $0x200, %ecx
  wrmsr
  /* Read both back now and again after a delay loop (a switch may fall in either). */
  mov $2, %ebp
2:
  READ_MSR 0x277
  cmp %ebx, %eax
  je 3f
  inc %edi
3:
  READ_MSR 0x200
  mov %esi, %edx
  shl $12, %edx
  or $6, %edx
  cmp %edx, %eax
  je 4f
  inc %edi
4:
  mov $2000, %ecx
5:
  loop 5b
  dec %ebp
  jnz 2b
  inc %esi
  cmp $PASSES, %esi
  jb 1b
  mov %edi, %eax
  CHECK_EQ $0, "pat and mtrr physbase0 read back on every pass"
  CHECKS_DONE "msrs_shared"

.section .rodata
pat_types:
  .byte 0, 1, 4, 5, 6, 7
