/* pf_heavy: page-fault-heavy micro-benchmark. NPAGES fresh pages are written once each; every
 * write takes a #PF (not present) whose handler maps the next free frame (one PTE store into a
 * preallocated page table) and returns, and the store runs again. Reported per chunk of CHUNK
 * faults, so a cost that grows with the number of faults taken so far shows up as growing
 * numbers: cycles per fault (the whole round trip: the fault, the handler, the PTE store, the
 * IRET, the retried store). Then cycles per store to the now-mapped pages as a baseline. */
#include "guest.inc"
#include "paging.inc"
#include "bench.inc"

#define BASE 0x40000000
#define CHUNK 128
#define NPAGES (4 * CHUNK)
#define FRAMES 0x02000000         /* frames handed out from physical 32 MiB */

/* Writes pages first .. first + CHUNK - 1 once each and reports the cycles per store. */
.macro TOUCH_CHUNK first, name
  BENCH_START
  mov $\first, %ecx
  mov %ecx, %edi
  shl $12, %edi
  add $BASE, %edi
1:
  mov %ecx, (%edi)
  add $0x1000, %edi
  inc %ecx
  cmp $(\first + CHUNK), %ecx
  jb 1b
  BENCH_STOP \name, CHUNK
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, %ebx
  call pg_alloc                     /* the page table of the area (NPAGES <= 1024) */
  mov %eax, pte_array
  or $(PTE_P | PTE_RW), %eax
  mov %eax, (BASE >> 22) * 4(%ebx)
  call pg_enable
  call pg_idt_init                  /* after CR0.PG: see tests/guests/paging.inc */
  mov $14, %eax
  mov $bench_pf, %ebx
  mov $PG_GATE_INTR, %ecx
  call pg_set_gate

  TOUCH_CHUNK 0, pf_heavy.fault_0-127
  TOUCH_CHUNK 128, pf_heavy.fault_128-255
  TOUCH_CHUNK 256, pf_heavy.fault_256-383
  TOUCH_CHUNK 384, pf_heavy.fault_384-511

  BENCH_START
  xor %ecx, %ecx
  mov $BASE, %edi
1:
  add %ecx, 4(%edi)                 /* mapped: no fault */
  add $0x1000, %edi
  inc %ecx
  cmp $NPAGES, %ecx
  jb 1b
  BENCH_STOP pf_heavy.mapped_store, NPAGES

  /* Sanity: one fault per page, and the first, a middle and the last page hold what was
   * written. */
  cmpl $NPAGES, faults
  jne 9f
  cmpl $0, BASE
  jne 9f
  cmpl $(NPAGES / 2), BASE + (NPAGES / 2) * 0x1000
  jne 9f
  cmpl $(NPAGES - 1), BASE + (NPAGES - 1) * 0x1000
  jne 9f
  EXIT(0)
9:
  BENCH_FAIL "pf_heavy: wrong fault count or data"

/* #PF: maps the next frame at CR2's page. Anything outside the area goes to the reporting
 * handler of paging.inc. */
bench_pf:
  push %eax
  push %edx
  mov %cr2, %eax
  sub $BASE, %eax
  cmp $(NPAGES * 0x1000), %eax
  jae 1f
  shr $12, %eax
  mov next_frame, %edx
  addl $0x1000, next_frame
  or $(PTE_P | PTE_RW), %edx
  push %ebx
  mov pte_array, %ebx
  mov %edx, (%ebx,%eax,4)
  pop %ebx
  incl faults
  pop %edx
  pop %eax
  add $4, %esp
  iret
1:
  pop %edx
  pop %eax
  jmp pg_pf_entry

.data
  .p2align 2
pte_array: .long 0
next_frame: .long FRAMES
faults: .long 0
