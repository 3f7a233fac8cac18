/* paging_demand: demand paging through a #PF handler (Intel SDM Vol. 3A §4.7, §6.15 vector 14).
 *
 * 64 pages at DEMAND_BASE (straddling a 4 MiB boundary, so the handler also has to create the
 * second page table) are touched for the first time: even pages by a read, odd pages by a write.
 * Each touch faults with CR2 = the exact linear address, error code P=0 U/S=0 and W/R = 0 for the
 * read, 1 for the write, and the saved EIP at the touching instruction; the handler maps a fresh
 * zeroed frame and returns, and the instruction runs again. The first reads see 0, the written
 * values read back both through the linear address and through the frame's identity address, a
 * second pass takes no fault, and a REP MOVSD into two more fresh pages faults once per page and
 * completes with the right data and registers.
 * Expected values: §4.7 (error code: P bit 0 = not present, W/R bit 1, U/S bit 2; CR2 = the
 * linear address), §6.15 (#PF is a fault: the saved EIP is the faulting instruction), §4.10.4.3
 * (a P 0 -> 1 change needs no invalidation). */
#include "guest.inc"
#include "paging.inc"

#define DEMAND_BASE 0x403e0000 /* pages 0-31 in PDE 0x100, 32-63 in PDE 0x101 */
#define NPAGES 64
#define STR_BASE 0x50000000    /* REP MOVSD target: two fresh pages */
#define LOG_MAX 80

/* Offset of the word touched in page i: (i * 0x40 + 0x10) & 0xffc. */

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, kernel_pd
  mov %eax, %ebx
  call pg_enable
  call pg_idt_init                  /* after CR0.PG: see paging.inc on kvm-pvm */
  movl $demand_hook, pg_pf_hook

  /* Pass 1: first touch of every page. ESI collects the OR of the values the reads return. */
  xor %esi, %esi
  xor %ecx, %ecx
1:
  mov %ecx, %edi
  shl $6, %edi
  add $0x10, %edi
  and $0xffc, %edi
  mov %ecx, %eax
  shl $12, %eax
  lea DEMAND_BASE(%edi,%eax), %edi
  mov %ecx, %edx
  or $0xd00d0000, %edx
  test $1, %ecx
  jnz 2f
demand_read:
  mov (%edi), %eax
  or %eax, %esi
  mov %edx, (%edi)
  jmp 3f
2:
demand_write:
  mov %edx, (%edi)
3:
  inc %ecx
  cmp $NPAGES, %ecx
  jb 1b

  mov pg_pf_count, %eax
  CHECK_EQ $NPAGES, "first touch: one fault per page"
  mov fault_log_cr2, %eax
  CHECK_EQ $(DEMAND_BASE + 0x10), "read fault cr2"
  mov fault_log_err, %eax
  CHECK_EQ $0, "read fault error code"
  mov fault_log_eip, %eax
  CHECK_EQ $demand_read, "read fault saved eip"
  mov fault_log_cr2 + 4, %eax
  CHECK_EQ $(DEMAND_BASE + 0x1000 + 0x50), "write fault cr2"
  mov fault_log_err + 4, %eax
  CHECK_EQ $PF_W, "write fault error code"
  mov fault_log_eip + 4, %eax
  CHECK_EQ $demand_write, "write fault saved eip"
  mov fault_log_cr2 + 63 * 4, %eax
  CHECK_EQ $(DEMAND_BASE + 63 * 0x1000 + 0xfd0), "last fault cr2"
  mov fault_log_err + 63 * 4, %eax
  CHECK_EQ $PF_W, "last fault error code"

  /* Every logged fault: CR2, error code and EIP as expected. */
  xor %ebx, %ebx                    /* mismatches */
  xor %ecx, %ecx
4:
  mov %ecx, %edi
  shl $6, %edi
  add $0x10, %edi
  and $0xffc, %edi
  mov %ecx, %eax
  shl $12, %eax
  lea DEMAND_BASE(%edi,%eax), %edi
  cmp fault_log_cr2(,%ecx,4), %edi
  je 5f
  inc %ebx
5:
  mov %ecx, %eax
  and $1, %eax
  add %eax, %eax                    /* W/R = 1 for the odd (written) pages */
  cmp fault_log_err(,%ecx,4), %eax
  je 6f
  inc %ebx
6:
  mov $demand_read, %eax
  test $1, %ecx
  jz 7f
  mov $demand_write, %eax
7:
  cmp fault_log_eip(,%ecx,4), %eax
  je 8f
  inc %ebx
8:
  inc %ecx
  cmp $NPAGES, %ecx
  jb 4b
  mov %ebx, %eax
  CHECK_EQ $0, "all 64 faults: cr2, error code, eip (mismatches)"

  mov %esi, %eax
  CHECK_EQ $0, "first reads of fresh pages return 0"

  /* Pass 2: read back through the linear addresses and through the frames (identity map). */
  xor %ebx, %ebx                    /* linear mismatches */
  xor %ebp, %ebp                    /* frame mismatches */
  xor %ecx, %ecx
1:
  mov %ecx, %edi
  shl $6, %edi
  add $0x10, %edi
  and $0xffc, %edi
  mov %ecx, %eax
  shl $12, %eax
  lea DEMAND_BASE(%edi,%eax), %esi
  mov %ecx, %edx
  or $0xd00d0000, %edx
  cmp (%esi), %edx
  je 2f
  inc %ebx
2:
  mov fault_log_frame(,%ecx,4), %eax
  add %edi, %eax
  cmp (%eax), %edx
  je 3f
  inc %ebp
3:
  inc %ecx
  cmp $NPAGES, %ecx
  jb 1b
  mov %ebx, %eax
  CHECK_EQ $0, "written values read back (mismatches)"
  mov %ebp, %eax
  CHECK_EQ $0, "written values in the mapped frames (mismatches)"
  mov pg_pf_count, %eax
  CHECK_EQ $NPAGES, "second pass takes no fault"

  /* REP MOVSD of 8 KiB from a kernel buffer into two fresh pages. */
  mov $str_src, %edi
  xor %ecx, %ecx
1:
  lea 0x5eed0000(%ecx), %eax
  mov %eax, (%edi,%ecx,4)
  inc %ecx
  cmp $2048, %ecx
  jb 1b
  mov $str_src, %esi
  mov $STR_BASE, %edi
  mov $2048, %ecx
rep_insn:
  rep movsl
  mov %ecx, %eax
  CHECK_EQ $0, "rep movsd: ecx"
  mov %edi, %eax
  CHECK_EQ $(STR_BASE + 0x2000), "rep movsd: edi"
  mov %esi, %eax
  CHECK_EQ $(str_src + 0x2000), "rep movsd: esi"
  mov pg_pf_count, %eax
  CHECK_EQ $(NPAGES + 2), "rep movsd: one fault per destination page"
  mov fault_log_cr2 + 64 * 4, %eax
  CHECK_EQ $STR_BASE, "rep movsd first fault cr2"
  mov fault_log_err + 64 * 4, %eax
  CHECK_EQ $PF_W, "rep movsd first fault error code"
  mov fault_log_eip + 64 * 4, %eax
  CHECK_EQ $rep_insn, "rep movsd first fault saved eip"
  mov fault_log_cr2 + 65 * 4, %eax
  CHECK_EQ $(STR_BASE + 0x1000), "rep movsd second fault cr2"
  mov fault_log_eip + 65 * 4, %eax
  CHECK_EQ $rep_insn, "rep movsd second fault saved eip"
  mov $str_src, %esi
  mov $STR_BASE, %edi
  mov $2048, %ecx
  repe cmpsl
  mov %ecx, %eax
  CHECK_EQ $0, "rep movsd: data copied"

  CHECKS_DONE "paging_demand"

/* The #PF hook: EAX = CR2, EDX = error code. Maps a fresh frame for a not-present fault in the
 * demand areas and logs the fault; anything else is not ours (EAX != 0). */
demand_hook:
  test $PF_P, %edx
  jnz 9f
  mov %eax, %ecx
  sub $DEMAND_BASE, %ecx
  cmp $(NPAGES * 0x1000), %ecx
  jb 1f
  mov %eax, %ecx
  sub $STR_BASE, %ecx
  cmp $0x2000, %ecx
  jae 9f
1:
  push %eax
  call pg_alloc
  mov %eax, %ebx                    /* the frame */
  pop %eax
  mov pg_pf_count, %ecx
  dec %ecx
  cmp $LOG_MAX, %ecx
  jae 2f
  mov %eax, fault_log_cr2(,%ecx,4)
  mov %edx, fault_log_err(,%ecx,4)
  mov pg_pf_eip, %edx
  mov %edx, fault_log_eip(,%ecx,4)
  mov %ebx, fault_log_frame(,%ecx,4)
2:
  and $0xfffff000, %eax
  lea PTE_P | PTE_RW(%ebx), %edx
  mov kernel_pd, %ebx
  call pg_map
  xor %eax, %eax
  ret
9:
  mov $1, %eax
  ret

.data
  .p2align 2
kernel_pd: .long 0

.bss
  .p2align 12
str_src:
  .skip 0x2000
fault_log_cr2:
  .skip LOG_MAX * 4
fault_log_err:
  .skip LOG_MAX * 4
fault_log_eip:
  .skip LOG_MAX * 4
fault_log_frame:
  .skip LOG_MAX * 4
