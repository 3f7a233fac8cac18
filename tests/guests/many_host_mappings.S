/* many_host_mappings: guests that make bt touch far more distinct pages than the host lets one
 * process map (vm.max_map_count, 65530 by default) (issue 17, defect 4: bt ended the run with
 * "cannot map a guest page into the window: Cannot allocate memory").
 *   - Unpaged: one load from each of 100,000 consecutive pages where nothing is (from 1 GiB up):
 *     each reads all ones, as a PC's bus answers (the pages are not RAM).
 *   - Paged: one frame mapped at 80,000 linear pages (from 16 MiB up; aliases, Intel SDM Vol. 3A
 *     §4.3), a store through each of them of its own index, then a load through the first:
 *     every store reached the same frame, so the last index is what it holds.
 * One line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every
 * check passed (status 1). */
#include "guest.inc"
#include "paging.inc"

#define NOTHING 0x40000000
#define PAGES_NOTHING 100000
#define ALIASES 80000
#define ALIAS_BASE 0x01000000

MULTIBOOT_HEADER

GUEST_ENTRY
  /* ---- unassigned pages, unpaged ---- */
  mov $NOTHING, %esi
  mov $PAGES_NOTHING, %ecx
  mov $0xffffffff, %edx
1:
  and (%esi), %edx
  add $4096, %esi
  loop 1b
  mov %edx, %eax
  CHECK_EQ $0xffffffff, "100000 unassigned pages all read all ones"

  /* ---- one frame at 80000 linear pages ---- */
  call pg_build_identity
  call pg_new_pd
  mov %eax, %ebx
  call pg_alloc
  mov %eax, frame
  xor %esi, %esi
2:
  mov %esi, %eax
  shl $12, %eax
  add $ALIAS_BASE, %eax
  mov frame, %edx
  or $(PTE_P | PTE_RW), %edx
  call pg_map
  inc %esi
  cmp $ALIASES, %esi
  jb 2b
  call pg_enable
  call pg_idt_init
  xor %esi, %esi
  mov $ALIAS_BASE, %edi
3:
  mov %esi, (%edi)
  add $4096, %edi
  inc %esi
  cmp $ALIASES, %esi
  jb 3b
  mov ALIAS_BASE, %eax
  CHECK_EQ $(ALIASES - 1), "80000 aliases of one frame: the last store"
  mov pg_pf_count, %eax
  CHECK_EQ $0, "page faults"
  CHECKS_DONE "many_host_mappings"

.data
  .p2align 2
frame: .long 0
