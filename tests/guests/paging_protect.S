/* paging_protect: supervisor write protection, accessed/dirty flags, 4 MiB pages and TLB
 * invalidation under 32-bit paging (Intel SDM Vol. 3A ch. 4).
 *
 * - CR0.WP (§4.6.1): a supervisor write to a page with R/W=0 in the PTE, or R/W=0 in the PDE,
 *   succeeds with WP=0 and faults with WP=1: #PF error code P=1 W/R=1 U/S=0 (3, §4.7), CR2 = the
 *   linear address, saved EIP = the store (§6.15), memory unchanged.
 * - A and D (§4.8): a read through a fresh PTE sets A in the PDE and the PTE and leaves D clear;
 *   a write sets D; after software clears them and invalidates with INVLPG, a read sets A again
 *   and a write sets A and D. The flags are read from the page tables in memory.
 * - An instruction fetch sets A in a fresh PTE, not D; the #PF frame pushed onto a fresh stack
 *   page sets its A and D (pushes are writes, §4.8). With CR4.PSE=0 a PDE's PS bit is ignored and
 *   the PDE references a page table (§4.3, Table 4-5).
 * - 4 MiB pages (§4.3, CR4.PSE=1, PDE.PS=1): reads and writes reach the 4 MiB frame; A and D are
 *   set in the PDE; a 4 MiB PDE with reserved bit 21 set faults with P=1 RSVD=1 (Table 4-4,
 *   §4.7: error code 9 for a supervisor read).
 * - Invalidation (§4.10.4.1): after a PTE is pointed to another frame, INVLPG makes the new frame
 *   visible; after pointing it back, a CR3 load does; after P is cleared and INVLPG, a read faults
 *   with error code 0; after R/W is cleared and INVLPG, a write faults with error code 3. */
#include "guest.inc"
#include "paging.inc"

#define RO_PAGE 0x40000000   /* PTE R/W=0 */
#define AD_PAGE 0x40001000   /* fresh PTE for the A/D checks */
#define SW_PAGE 0x40002000   /* switched between two frames */
#define ROPDE_PAGE 0x40400000 /* PDE R/W=0, PTE R/W=1 */
#define BIG_PAGE 0x80000000  /* 4 MiB page -> physical 4 MiB */
#define RSVD_PAGE 0x80400000 /* 4 MiB PDE with bit 21 set */
#define BIG_FRAME PG_FREE_4M
#define CODE_PAGE 0x40003000  /* fresh PTE, holds code */
#define STACK_PAGE 0x40004000 /* fresh PTE, becomes the stack for one exception */
#define NP_PAGE 0x40005000    /* not present */
#define PSX_PAGE 0x40800000   /* PDE with PS=1 while CR4.PSE=0: references a page table */

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, kernel_pd
  mov %eax, %ebx

  /* Frames and their contents (written through the identity map). */
  call pg_alloc
  mov %eax, f_ro
  movl $0xcafe0001, 8(%eax)
  call pg_alloc
  mov %eax, f_ad
  movl $0xada0da0d, 0x24(%eax)
  call pg_alloc
  mov %eax, f_sw1
  movl $0x51111111, 0x30(%eax)
  call pg_alloc
  mov %eax, f_sw2
  movl $0x52222222, 0x30(%eax)
  call pg_alloc
  mov %eax, f_ropde
  movl $0x0de0de00, 0x10(%eax)

  /* Mappings. */
  mov f_ro, %edx
  or $PTE_P, %edx
  mov $RO_PAGE, %eax
  call pg_map
  mov f_ad, %edx
  or $(PTE_P | PTE_RW), %edx
  mov $AD_PAGE, %eax
  call pg_map
  mov f_sw1, %edx
  or $(PTE_P | PTE_RW), %edx
  mov $SW_PAGE, %eax
  call pg_map
  movl $PTE_P, pg_pde_flags         /* the page table of ROPDE_PAGE: PDE R/W=0 */
  mov f_ropde, %edx
  or $(PTE_P | PTE_RW), %edx
  mov $ROPDE_PAGE, %eax
  call pg_map
  movl $(PTE_P | PTE_RW | PTE_US), pg_pde_flags
  mov $AD_PAGE, %eax
  call pg_pte_ptr
  mov %eax, ad_pte
  mov $SW_PAGE, %eax
  call pg_pte_ptr
  mov %eax, sw_pte

  call pg_alloc                     /* CODE_PAGE: mov $0xc0dec0de, %eax; ret */
  movb $0xb8, (%eax)
  movl $0xc0dec0de, 1(%eax)
  movb $0xc3, 5(%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov $CODE_PAGE, %eax
  call pg_map
  call pg_pte_ptr
  mov %eax, code_pte
  call pg_alloc
  lea PTE_P | PTE_RW(%eax), %edx
  mov $STACK_PAGE, %eax
  call pg_map
  call pg_pte_ptr
  mov %eax, stack_pte
  call pg_alloc                     /* PSX_PAGE: PDE PS=1 -> page table -> frame */
  mov %eax, %ecx
  call pg_alloc
  movl $0x0505e000, 0x40(%eax)
  or $(PTE_P | PTE_RW), %eax
  mov %eax, (%ecx)
  or $(PTE_PS | PTE_P | PTE_RW), %ecx
  mov %ecx, (PSX_PAGE >> 22) * 4(%ebx)

  mov %cr0, %eax
  and $~CR0_WP, %eax
  mov %eax, %cr0
  call pg_enable
  call pg_idt_init                  /* after CR0.PG: see paging.inc on kvm-pvm */

  /* ---- CR0.WP ---- */
  mov RO_PAGE + 8, %eax
  CHECK_EQ $0xcafe0001, "supervisor read of a read-only page"
  PF_ARM 1f
  movl $0xcafe0002, RO_PAGE + 8
1:
  PF_NONE "WP=0: supervisor write to a read-only page"
  mov f_ro, %eax
  mov 8(%eax), %eax
  CHECK_EQ $0xcafe0002, "WP=0: the write reached the frame"

  mov %cr0, %eax
  or $CR0_WP, %eax
  mov %eax, %cr0
  PF_ARM 1f
wp_store:
  movl $0xcafe0003, RO_PAGE + 8
1:
  PF_CHECK "WP=1: supervisor write to a read-only page", RO_PAGE + 8, PF_P | PF_W, wp_store
  mov f_ro, %eax
  mov 8(%eax), %eax
  CHECK_EQ $0xcafe0002, "WP=1: the faulting write changed nothing"
  mov RO_PAGE + 8, %eax
  CHECK_EQ $0xcafe0002, "WP=1: supervisor read of a read-only page"

  PF_ARM 1f
wp_pde_store:
  movl $0x0de0de01, ROPDE_PAGE + 0x10
1:
  PF_CHECK "WP=1: supervisor write under a read-only PDE", ROPDE_PAGE + 0x10, PF_P | PF_W, wp_pde_store
  mov ROPDE_PAGE + 0x10, %eax
  CHECK_EQ $0x0de0de00, "WP=1: supervisor read under a read-only PDE"

  mov %cr0, %eax
  and $~CR0_WP, %eax
  mov %eax, %cr0
  PF_ARM 1f
  movl $0x0de0de02, ROPDE_PAGE + 0x10
1:
  PF_NONE "WP=0: supervisor write under a read-only PDE"
  mov f_ropde, %eax
  mov 0x10(%eax), %eax
  CHECK_EQ $0x0de0de02, "WP=0: the write under a read-only PDE reached the frame"
  mov %cr0, %eax
  or $CR0_WP, %eax
  mov %eax, %cr0

  /* ---- Accessed and dirty flags ---- */
  mov ad_pte, %eax
  mov (%eax), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $0, "fresh PTE: A and D clear"
  mov AD_PAGE + 0x24, %eax
  CHECK_EQ $0xada0da0d, "read through the fresh PTE"
  mov ad_pte, %eax
  mov (%eax), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $PTE_A, "after a read: PTE A set, D clear"
  mov kernel_pd, %eax
  mov (AD_PAGE >> 22) * 4(%eax), %eax
  and $PTE_A, %eax
  CHECK_EQ $PTE_A, "after a read: PDE A set"
  movl $0xada0da0e, AD_PAGE + 0x24
  mov ad_pte, %eax
  mov (%eax), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $(PTE_A | PTE_D), "after a write: PTE A and D set"
  mov f_ad, %eax
  mov 0x24(%eax), %eax
  CHECK_EQ $0xada0da0e, "the write reached the frame"

  /* Software clears A and D, invalidates, reads, then writes. */
  mov ad_pte, %eax
  andl $~(PTE_A | PTE_D), (%eax)
  invlpg AD_PAGE
  mov AD_PAGE + 0x24, %eax
  CHECK_EQ $0xada0da0e, "read after clearing A/D and INVLPG"
  mov ad_pte, %eax
  mov (%eax), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $PTE_A, "after clear, INVLPG, read: A set, D clear"
  movl $0xada0da0f, AD_PAGE + 0x24
  mov ad_pte, %eax
  mov (%eax), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $(PTE_A | PTE_D), "after clear, INVLPG, read, write: A and D set"
  /* Clear both again; this time the first access is a write. */
  mov ad_pte, %eax
  andl $~(PTE_A | PTE_D), (%eax)
  invlpg AD_PAGE
  movl $0xada0da10, AD_PAGE + 0x24
  mov ad_pte, %eax
  mov (%eax), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $(PTE_A | PTE_D), "after clear, INVLPG, write: A and D set"
  mov f_ad, %eax
  mov 0x24(%eax), %eax
  CHECK_EQ $0xada0da10, "that write reached the frame"

  /* ---- Invalidation ---- */
  mov SW_PAGE + 0x30, %eax
  CHECK_EQ $0x51111111, "first frame through the PTE"
  mov f_sw2, %eax
  or $(PTE_P | PTE_RW), %eax
  mov sw_pte, %edx
  mov %eax, (%edx)
  invlpg SW_PAGE
  mov SW_PAGE + 0x30, %eax
  CHECK_EQ $0x52222222, "INVLPG after a PTE change: the new frame"
  mov f_sw1, %eax
  or $(PTE_P | PTE_RW), %eax
  mov sw_pte, %edx
  mov %eax, (%edx)
  mov %cr3, %eax
  mov %eax, %cr3
  mov SW_PAGE + 0x30, %eax
  CHECK_EQ $0x51111111, "CR3 load after a PTE change: the new frame"
  movl $0x51111112, SW_PAGE + 0x30
  mov f_sw1, %eax
  mov 0x30(%eax), %eax
  CHECK_EQ $0x51111112, "a write after the CR3 load reached the new frame"

  mov sw_pte, %edx
  andl $~PTE_RW, (%edx)
  invlpg SW_PAGE
  PF_ARM 1f
ro_store:
  movl $0x51111113, SW_PAGE + 0x30
1:
  PF_CHECK "R/W cleared and INVLPG: write", SW_PAGE + 0x30, PF_P | PF_W, ro_store
  mov sw_pte, %edx
  andl $~PTE_P, (%edx)
  invlpg SW_PAGE
  PF_ARM 1f
np_load:
  mov SW_PAGE + 0x34, %eax
1:
  PF_CHECK "P cleared and INVLPG: read", SW_PAGE + 0x34, 0, np_load

  /* ---- A on instruction fetch, D on an exception frame, PS without CR4.PSE ---- */
  call CODE_PAGE
  CHECK_EQ $0xc0dec0de, "code in a fresh page runs"
  mov code_pte, %eax
  mov (%eax), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $PTE_A, "after executing code: PTE A set, D clear"
  mov stack_pte, %eax
  mov (%eax), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $0, "fresh stack page: A and D clear"
  mov %esp, saved_esp
  mov $STACK_PAGE + 0x1000, %esp
  PF_ARM 1f
np_stack_load:
  mov NP_PAGE, %eax
1:
  mov saved_esp, %esp
  PF_CHECK "#PF with the stack in a fresh page", NP_PAGE, 0, np_stack_load
  mov stack_pte, %eax
  mov (%eax), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $(PTE_A | PTE_D), "exception frame pushed: stack PTE A and D set"
  movzwl STACK_PAGE + 0x1000 - 8, %eax  /* top down: EFLAGS, CS, EIP, error code */
  CHECK_EQ $CODE_SEL, "exception frame pushed: saved cs in the page"
  mov STACK_PAGE + 0x1000 - 16, %eax
  CHECK_EQ $0, "exception frame pushed: error code in the page"
  mov PSX_PAGE + 0x40, %eax
  CHECK_EQ $0x0505e000, "PDE PS=1 with CR4.PSE=0 references a page table"

  /* ---- 4 MiB pages ---- */
  mov %cr4, %eax
  or $CR4_PSE, %eax
  mov %eax, %cr4
  movl $0xb16b1600, BIG_FRAME + 0x123454
  movl $0xb16b16ff, BIG_FRAME + 0x3ffffc
  mov kernel_pd, %ebx
  movl $(BIG_FRAME | PTE_PS | PTE_P | PTE_RW), (BIG_PAGE >> 22) * 4(%ebx)
  mov BIG_PAGE + 0x123454, %eax
  CHECK_EQ $0xb16b1600, "4 MiB page: read"
  mov BIG_PAGE + 0x3ffffc, %eax
  CHECK_EQ $0xb16b16ff, "4 MiB page: read of its last word"
  mov (BIG_PAGE >> 22) * 4(%ebx), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $PTE_A, "4 MiB page after reads: PDE A set, D clear"
  movl $0xb16b1601, BIG_PAGE + 0x200008
  mov BIG_FRAME + 0x200008, %eax
  CHECK_EQ $0xb16b1601, "4 MiB page: the write reached the frame"
  mov (BIG_PAGE >> 22) * 4(%ebx), %eax
  and $(PTE_A | PTE_D), %eax
  CHECK_EQ $(PTE_A | PTE_D), "4 MiB page after a write: PDE A and D set"

  movl $(BIG_FRAME | 0x00200000 | PTE_PS | PTE_P | PTE_RW), (RSVD_PAGE >> 22) * 4(%ebx)
  PF_ARM 1f
rsvd_load:
  mov RSVD_PAGE + 0x100, %eax
1:
  PF_CHECK "4 MiB PDE with reserved bit 21", RSVD_PAGE + 0x100, PF_P | PF_RSVD, rsvd_load


  CHECKS_DONE "paging_protect"

.data
  .p2align 2
kernel_pd: .long 0
f_ro: .long 0
f_ad: .long 0
f_sw1: .long 0
f_sw2: .long 0
f_ropde: .long 0
ad_pte: .long 0
sw_pte: .long 0
code_pte: .long 0
stack_pte: .long 0
saved_esp: .long 0
