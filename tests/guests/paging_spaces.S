/* paging_spaces: several address spaces (page directories) and CR3 switches (Intel SDM Vol. 3A
 * §4.3, §4.10.4.1, §4.10.2.4).
 *
 * Spaces A and B share the identity map (kernel code and data) but map the same linear pages to
 * different frames: a data page (A: 0xaaaa0000 + n, B: 0xbbbb0000 + n) and a code page whose
 * function at offset 0 returns a different constant in each space, and whose function at 0x100
 * (the same bytes in both) increments the data word. 500 rounds switch CR3 A -> B -> A, reading
 * the data, calling both functions after every switch. While A is current, B's directory gets a
 * new PDE and B's page table a changed PTE; B sees both after the switch (a CR3 load without
 * PCIDs invalidates every non-global translation, §4.10.4.1). Then twelve spaces (more than a shadow
 * MMU might keep) each map their own data and code frames at those addresses; three rounds over
 * all twelve check that each sees its own data and runs its own code.
 *
 * Global pages (CR4.PGE=1, G=1 in a PTE of a page table shared by A and B): the data is seen in
 * both spaces; after the PTE is pointed to a new frame, INVLPG makes it visible (INVLPG
 * invalidates global entries too, §4.10.4.1), also after a CR3 load. After a PTE change with no
 * invalidation, a CR3 load may keep the global translation: only "old or new frame" is checked.
 * Toggling CR4.PGE invalidates every TLB entry, global ones included (§4.10.4.1): the new frame.
 * A linear page mapped global to one frame in A and to another in B may read either after a
 * switch to B (A's global translation may survive the CR3 load): "one of the two". */
#include "guest.inc"
#include "paging.inc"

#define DATA 0x40000000
#define CODE 0x40001000
#define GLOBAL 0x40400000   /* in a page table shared by A and B */
#define GMIX 0x40800000     /* global in A -> frame X, global in B -> frame Y */
#define NEWPT 0x40c00000    /* mapped in B (new page table) while A is current */
#define ROUNDS 500
#define NSPACES 12

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, pd_a
  call pg_new_pd
  mov %eax, pd_b

  /* Data frames. */
  call pg_alloc
  mov %eax, f_a
  movl $0xaaaa0000, (%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov pd_a, %ebx
  mov $DATA, %eax
  call pg_map
  call pg_alloc
  mov %eax, f_b
  movl $0xbbbb0000, (%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov pd_b, %ebx
  mov $DATA, %eax
  call pg_map

  /* Code frames: offset 0 from code_a / code_b, offset 0x100 from code_inc. */
  call pg_alloc
  mov $code_a, %esi
  call install_code
  lea PTE_P | PTE_RW(%eax), %edx
  mov pd_a, %ebx
  mov $CODE, %eax
  call pg_map
  call pg_alloc
  mov $code_b, %esi
  call install_code
  lea PTE_P | PTE_RW(%eax), %edx
  mov pd_b, %ebx
  mov $CODE, %eax
  call pg_map

  /* Global page: one page table shared by both spaces. */
  call pg_alloc
  mov %eax, f_g1
  movl $0x61616161, (%eax)
  call pg_alloc
  mov %eax, f_g2
  movl $0x62626262, (%eax)
  mov f_g1, %edx
  or $(PTE_P | PTE_RW | PTE_G), %edx
  mov pd_a, %ebx
  mov $GLOBAL, %eax
  call pg_map
  call pg_pte_ptr
  mov %eax, g_pte
  mov pd_a, %ebx
  mov (GLOBAL >> 22) * 4(%ebx), %eax
  mov pd_b, %ebx
  mov %eax, (GLOBAL >> 22) * 4(%ebx)
  /* GMIX: global in both, different frames. */
  call pg_alloc
  movl $0x78787878, (%eax)
  lea PTE_P | PTE_RW | PTE_G(%eax), %edx
  mov pd_a, %ebx
  mov $GMIX, %eax
  call pg_map
  call pg_alloc
  movl $0x79797979, (%eax)
  lea PTE_P | PTE_RW | PTE_G(%eax), %edx
  mov pd_b, %ebx
  mov $GMIX, %eax
  call pg_map

  mov pd_a, %ebx
  call pg_enable
  call pg_idt_init                  /* after CR0.PG: see paging.inc on kvm-pvm */

  /* ---- A and B, back and forth ---- */
  xor %esi, %esi                    /* data mismatches */
  xor %edi, %edi                    /* code mismatches */
  xor %ebp, %ebp                    /* round */
1:
  mov pd_a, %eax
  mov %eax, %cr3
  lea 0xaaaa0000(%ebp), %eax
  cmp DATA, %eax
  je 2f
  inc %esi
2:
  call CODE
  cmp $0xa0a0a0a0, %eax
  je 3f
  inc %edi
3:
  call CODE + 0x100                 /* A's word += 1 */
  mov pd_b, %eax
  mov %eax, %cr3
  lea 0xbbbb0000(%ebp,%ebp), %eax
  cmp DATA, %eax
  je 4f
  inc %esi
4:
  call CODE
  cmp $0xb0b0b0b0, %eax
  je 5f
  inc %edi
5:
  call CODE + 0x100                 /* B's word += 2 */
  call CODE + 0x100
  inc %ebp
  cmp $ROUNDS, %ebp
  jb 1b
  mov %esi, %eax
  CHECK_EQ $0, "A/B switches: each space reads its own data (mismatches)"
  mov %edi, %eax
  CHECK_EQ $0, "A/B switches: each space runs its own code (mismatches)"
  mov f_a, %eax
  mov (%eax), %eax
  CHECK_EQ $(0xaaaa0000 + ROUNDS), "A's data frame after the rounds"
  mov f_b, %eax
  mov (%eax), %eax
  CHECK_EQ $(0xbbbb0000 + 2 * ROUNDS), "B's data frame after the rounds"
  mov pd_a, %eax
  mov %eax, %cr3
  mov DATA, %eax
  CHECK_EQ $(0xaaaa0000 + ROUNDS), "A's data through A after the rounds"

  /* ---- B's tables written while A is current ---- */
  call pg_alloc
  movl $0x7e7e7e7e, (%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov pd_b, %ebx
  mov $NEWPT, %eax
  call pg_map                       /* a new page table: writes a PDE in B's directory */
  call pg_alloc
  movl $0x7d7d7d7d, (%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov $DATA, %eax
  call pg_map                       /* B's DATA PTE -> another frame */
  mov pd_b, %eax
  mov %eax, %cr3
  mov NEWPT, %eax
  CHECK_EQ $0x7e7e7e7e, "PDE written in B's directory while A ran: seen in B"
  mov DATA, %eax
  CHECK_EQ $0x7d7d7d7d, "PTE written in B's table while A ran: seen in B"

  /* ---- twelve spaces ---- */
  xor %ecx, %ecx
1:
  call pg_new_pd
  mov %eax, pds(,%ecx,4)
  mov %eax, %ebx
  call pg_alloc
  lea 0x5ace0000(%ecx), %edx
  mov %edx, (%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov $DATA, %eax
  call pg_map
  call pg_alloc
  movb $0xb8, (%eax)                /* mov $(0xc0de0000 + i), %eax; ret */
  lea 0xc0de0000(%ecx), %edx
  mov %edx, 1(%eax)
  movb $0xc3, 5(%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov $CODE, %eax
  call pg_map
  inc %ecx
  cmp $NSPACES, %ecx
  jb 1b

  xor %esi, %esi                    /* data mismatches */
  xor %edi, %edi                    /* code mismatches */
  xor %ebp, %ebp                    /* round */
1:
  xor %ecx, %ecx
2:
  mov pds(,%ecx,4), %eax
  mov %eax, %cr3
  lea 0x5ace0000(%ecx,%ebp), %eax   /* incremented once per round */
  cmp DATA, %eax
  je 3f
  inc %esi
3:
  incl DATA
  call CODE
  lea 0xc0de0000(%ecx), %edx
  cmp %edx, %eax
  je 4f
  inc %edi
4:
  inc %ecx
  cmp $NSPACES, %ecx
  jb 2b
  inc %ebp
  cmp $3, %ebp
  jb 1b
  mov %esi, %eax
  CHECK_EQ $0, "12 spaces: each reads its own data (mismatches)"
  mov %edi, %eax
  CHECK_EQ $0, "12 spaces: each runs its own code (mismatches)"

  /* ---- global pages ---- */
  mov %cr4, %eax
  or $CR4_PGE, %eax
  mov %eax, %cr4
  mov pd_a, %eax
  mov %eax, %cr3
  mov GLOBAL, %eax
  CHECK_EQ $0x61616161, "global page read in A"
  mov pd_b, %eax
  mov %eax, %cr3
  mov GLOBAL, %eax
  CHECK_EQ $0x61616161, "global page read in B"
  mov f_g2, %eax
  or $(PTE_P | PTE_RW | PTE_G), %eax
  mov g_pte, %edx
  mov %eax, (%edx)
  invlpg GLOBAL
  mov GLOBAL, %eax
  CHECK_EQ $0x62626262, "global PTE changed, INVLPG: new frame"
  mov pd_a, %eax
  mov %eax, %cr3
  mov GLOBAL, %eax
  CHECK_EQ $0x62626262, "global PTE changed, INVLPG, CR3 load: new frame"
  mov f_g1, %eax
  or $(PTE_P | PTE_RW | PTE_G), %eax
  mov g_pte, %edx
  mov %eax, (%edx)
  mov pd_b, %eax
  mov %eax, %cr3
  mov GLOBAL, %edx
  xor %eax, %eax
  cmp $0x61616161, %edx
  je 1f
  cmp $0x62626262, %edx
  jne 2f
1:
  inc %eax
2:
  CHECK_EQ $1, "global PTE changed, CR3 load only: old or new frame"
  mov %cr4, %eax
  and $~CR4_PGE, %eax
  mov %eax, %cr4
  or $CR4_PGE, %eax
  mov %eax, %cr4
  mov GLOBAL, %eax
  CHECK_EQ $0x61616161, "global PTE changed, CR4.PGE toggled: new frame"
  movl $0x61616162, GLOBAL
  mov pd_a, %eax
  mov %eax, %cr3
  mov GLOBAL, %eax
  CHECK_EQ $0x61616162, "a write to the global page is seen in the other space"

  mov GMIX, %eax
  CHECK_EQ $0x78787878, "A's own global page"
  mov pd_b, %eax
  mov %eax, %cr3
  mov GMIX, %edx
  xor %eax, %eax
  cmp $0x78787878, %edx
  je 1f
  cmp $0x79797979, %edx
  jne 2f
1:
  inc %eax
2:
  CHECK_EQ $1, "a global page of A, other frame in B: one of the two"
  mov %cr4, %eax
  and $~CR4_PGE, %eax
  mov %eax, %cr4
  mov GMIX, %eax
  CHECK_EQ $0x79797979, "after CR4.PGE is cleared: B's own frame"

  CHECKS_DONE "paging_spaces"

/* install_code: EAX = frame, ESI = 16 bytes of code for offset 0; code_inc goes to 0x100. */
install_code:
  push %ecx
  push %esi
  push %edi
  mov %eax, %edi
  mov $16, %ecx
  rep movsb
  mov $code_inc, %esi
  lea 0x100(%eax), %edi
  mov $16, %ecx
  rep movsb
  pop %edi
  pop %esi
  pop %ecx
  ret

/* Code templates, copied into the code frames (position-independent). */
  .balign 16, 0xcc
code_a:
  mov $0xa0a0a0a0, %eax
  ret
  .balign 16, 0xcc
code_b:
  xor %eax, %eax
  or $0xb0b0b0b0, %eax
  nop
  ret
  .balign 16, 0xcc
code_inc:
  incl DATA
  ret
  .balign 16, 0xcc

.data
  .p2align 2
pd_a: .long 0
pd_b: .long 0
f_a: .long 0
f_b: .long 0
f_g1: .long 0
f_g2: .long 0
g_pte: .long 0
pds: .skip NSPACES * 4
