/* pte_writer: the same few instructions write one page-table entry over and over, the way a
 * kernel's set_pte, ptep_set_wrprotect and ptep_get_and_clear do. bt translates an instruction
 * that stored into a traced page table again, so that its later stores go through the monitor
 * (adaptive translation); every change must still take effect exactly as Intel SDM Vol. 3A says:
 *
 *   - a new frame after the PTE write and INVLPG (§4.10.4.1): reads see the new frame's marker,
 *     writes land in it (checked through the identity map);
 *   - R/W cleared by LOCK BTR: a write faults with error code P|W (§4.7), CR2 and the saved EIP
 *     at the write; R/W set again by LOCK BTS: the write goes through;
 *   - A and D cleared by AND: the next read sets A only, the next write sets D (§4.8);
 *   - a change of the AVL bits only (XOR, bit 9) keeps the translation (§4.3: ignored bits);
 *   - XCHG and LOCK CMPXCHG forms switch frames too;
 *   - P cleared: a read faults with error code 0;
 *   - the same store instruction then storing across a page boundary: the store lands.
 * Each form runs ROUNDS times, well past the first store that teaches bt the instruction.
 * One line per check; exit 0 when all passed. */
#include "guest.inc"
#include "paging.inc"

#define TEST_LIN 0x41000000
#define ROUNDS 48
#define NFRAMES 4

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, kernel_pd
  mov %eax, %ebx
  call pg_enable
  call pg_idt_init
  mov %cr0, %eax                    /* CR0.WP: supervisor writes honour R/W (§4.6) */
  or $CR0_WP, %eax
  mov %eax, %cr0

  /* NFRAMES frames, each with its marker in word 0. */
  xor %ecx, %ecx
1:
  call pg_alloc
  mov %eax, frames(,%ecx,4)
  lea 0x5a000000(%ecx), %edx
  mov %edx, (%eax)
  inc %ecx
  cmp $NFRAMES, %ecx
  jb 1b
  mov $TEST_LIN, %eax
  mov frames, %edx
  or $(PTE_P | PTE_RW), %edx
  mov kernel_pd, %ebx
  call pg_map
  mov $TEST_LIN, %eax
  call pg_pte_ptr
  mov %eax, pte_addr
  mov (TEST_LIN), %eax              /* the translation is in use (and shadowed) */

  /* MOV: a new frame each round; reads and writes go to it. */
  movl $0, mismatches
  xor %ecx, %ecx
1:
  mov %ecx, %eax
  and $(NFRAMES - 1), %eax
  mov frames(,%eax,4), %edx
  or $(PTE_P | PTE_RW), %edx
  mov pte_addr, %edi
  mov %edx, (%edi)                  /* the PTE store */
  invlpg (TEST_LIN)
  mov (TEST_LIN), %ebx
  lea 0x5a000000(%eax), %edx
  cmp %edx, %ebx
  je 2f
  incl mismatches
2:
  mov %ecx, (TEST_LIN + 4)             /* a write through the new translation */
  mov frames(,%eax,4), %esi
  cmp %ecx, 4(%esi)
  je 3f
  incl mismatches
3:
  inc %ecx
  cmp $ROUNDS, %ecx
  jb 1b
  mov mismatches, %eax
  CHECK_EQ $0, "mov: every round reads and writes the frame just mapped"

  /* LOCK BTR clears R/W: the write faults; LOCK BTS sets it again: the write goes through. */
  movl $0, mismatches
  xor %ecx, %ecx
1:
  mov pte_addr, %edi
  lock btrl $1, (%edi)              /* R/W = 0 */
  invlpg (TEST_LIN)
  PF_ARM 2f
pte_ro_write:
  movl $0xbad, (TEST_LIN + 8)
2:
  cmpl $(PF_P | PF_W), pg_pf_err
  je 3f
  incl mismatches
3:
  cmpl $(TEST_LIN + 8), pg_pf_cr2
  je 4f
  incl mismatches
4:
  cmpl $pte_ro_write, pg_pf_eip
  je 5f
  incl mismatches
5:
  movl $0, pg_pf_recover
  lock btsl $1, (%edi)              /* R/W = 1 */
  invlpg (TEST_LIN)
  mov %ecx, (TEST_LIN + 8)
  mov (%edi), %esi
  and $0xfffff000, %esi
  cmp %ecx, 8(%esi)
  je 6f
  incl mismatches
6:
  inc %ecx
  cmp $ROUNDS, %ecx
  jb 1b
  mov mismatches, %eax
  CHECK_EQ $0, "lock btr/bts: R/W off faults with P|W at the write, R/W on writes"

  /* AND clears A and D; a read sets A only, a write sets D. */
  movl $0, mismatches
  xor %ecx, %ecx
1:
  mov pte_addr, %edi
  andl $~(PTE_A | PTE_D), (%edi)
  invlpg (TEST_LIN)
  mov (TEST_LIN), %eax
  mov (%edi), %eax
  and $(PTE_A | PTE_D), %eax
  cmp $PTE_A, %eax
  je 2f
  incl mismatches
2:
  mov %ecx, (TEST_LIN + 12)
  mov (%edi), %eax
  and $(PTE_A | PTE_D), %eax
  cmp $(PTE_A | PTE_D), %eax
  je 3f
  incl mismatches
3:
  inc %ecx
  cmp $ROUNDS, %ecx
  jb 1b
  mov mismatches, %eax
  CHECK_EQ $0, "and: A/D cleared, a read sets A, a write sets D"

  /* XOR of an AVL bit: the same frame stays mapped and writable. */
  movl $0, mismatches
  mov pte_addr, %edi
  mov (%edi), %esi
  and $0xfffff000, %esi
  xor %ecx, %ecx
1:
  xorl $0x200, (%edi)
  mov %ecx, (TEST_LIN + 16)
  cmp %ecx, 16(%esi)
  je 2f
  incl mismatches
2:
  inc %ecx
  cmp $ROUNDS, %ecx
  jb 1b
  mov mismatches, %eax
  CHECK_EQ $0, "xor of AVL bit 9: the translation stays"

  /* XCHG and LOCK CMPXCHG switch frames. */
  movl $0, mismatches
  xor %ecx, %ecx
1:
  mov %ecx, %eax
  and $(NFRAMES - 1), %eax
  mov frames(,%eax,4), %edx
  or $(PTE_P | PTE_RW), %edx
  mov pte_addr, %edi
  test $1, %ecx
  jz 2f
  xchg %edx, (%edi)
  jmp 3f
2:
  mov %eax, %esi
  mov (%edi), %eax
  lock cmpxchg %edx, (%edi)
  mov %esi, %eax
3:
  invlpg (TEST_LIN)
  mov (TEST_LIN), %ebx
  lea 0x5a000000(%eax), %edx
  cmp %edx, %ebx
  je 4f
  incl mismatches
4:
  inc %ecx
  cmp $ROUNDS, %ecx
  jb 1b
  mov mismatches, %eax
  CHECK_EQ $0, "xchg and lock cmpxchg: every round reads the frame just mapped"

  /* One store instruction taught to write page tables (ROUNDS stores into the PTE), then
   * storing 4 bytes across a page boundary (at 0xffe of a page of data): every store lands, two
   * bytes in each page, as any store's do (bt once spun in the monitor on that store). */
  xor %ecx, %ecx
1:
  mov pte_addr, %edi
  mov (%edi), %edx
  cmp $ROUNDS, %ecx
  jb 2f
  mov $(cross_page + 0xffe), %edi
  lea 0x11223344(%ecx), %edx
2:
  mov %edx, (%edi)                  /* a PTE, then across the boundary */
  inc %ecx
  cmp $(2 * ROUNDS), %ecx
  jb 1b
  mov (cross_page + 0xffe), %eax
  CHECK_EQ $(0x11223344 + 2 * ROUNDS - 1), "a page-table writer's store across a page boundary"

  /* P cleared by the MOV form: a read faults, not present. */
  mov pte_addr, %edi
  movl $0, (%edi)
  invlpg (TEST_LIN)
  PF_ARM 1f
pte_np_read:
  mov (TEST_LIN), %eax
1:
  PF_CHECK "P cleared: read", TEST_LIN, 0, pte_np_read

  CHECKS_DONE "pte_writer"

.data
  .p2align 2
kernel_pd: .long 0
pte_addr: .long 0
mismatches: .long 0
frames: .skip 4 * NFRAMES
  .p2align 12
cross_page: .skip 8192
