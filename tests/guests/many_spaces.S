/* many_spaces: a guest that cycles through 600 page directories, five times, running code
 * through an indirect call in each (issue 17, defect 3: bt kept an indirect-branch table of about
 * 0.9 MiB for every CR3 it had seen, and never freed one, so host memory grew without bound).
 * Each directory maps the same identity tables (Intel SDM Vol. 3A §4.3), so the code and data are
 * the same everywhere; the checks are that every call ran in the right space (the value read
 * through a per-space page) and, in the expectation file, that vmbt's peak RSS stays bounded.
 * One line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every
 * check passed (status 1). */
#include "guest.inc"
#include "paging.inc"

#define SPACES 600
#define ROUNDS 5
#define PROBE 0x40000000 /* per-space page: holds its directory's index */

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  xor %esi, %esi
1:
  call pg_new_pd
  mov %eax, pds(, %esi, 4)
  mov %eax, %ebx
  call pg_alloc                     /* the probe frame: its first word is the index */
  mov %esi, (%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov $PROBE, %eax
  call pg_map
  inc %esi
  cmp $SPACES, %esi
  jb 1b
  mov pds, %ebx
  call pg_enable
  call pg_idt_init

  xor %edi, %edi                    /* calls that read the wrong space's probe */
  xor %ebp, %ebp                    /* calls made */
  mov $ROUNDS, %ecx
2:
  xor %esi, %esi
3:
  mov pds(, %esi, 4), %eax
  mov %eax, %cr3
  mov $read_probe, %edx
  call *%edx
  cmp %esi, %eax
  je 4f
  inc %edi
4:
  inc %ebp
  inc %esi
  cmp $SPACES, %esi
  jb 3b
  loop 2b
  mov %ebp, %eax
  CHECK_EQ $(SPACES * ROUNDS), "calls, one in every space of every round"
  mov %edi, %eax
  CHECK_EQ $0, "calls that saw another space's page"
  mov pg_pf_count, %eax
  CHECK_EQ $0, "page faults"
  CHECKS_DONE "many_spaces"

read_probe:
  mov PROBE, %eax
  ret

.bss
  .p2align 2
pds:
  .skip 4 * SPACES
