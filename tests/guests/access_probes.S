/* access_probes: the same instructions fault round after round (bt's access probes, docs/bt.md).
 *
 * bt translates an instruction that took page faults twice with an access probe in front of it:
 * the page's shadow entry is checked inline and the monitor delivers the guest's #PF without a
 * host fault. Each case below runs one instruction ROUNDS times; before every round the test
 * page is made not present (or read-only) and INVLPG'd, and the #PF handler's hook logs CR2, the
 * error code and the saved EIP, maps the page again and lets the instruction run again. The first
 * two rounds take bt's host-fault path, the rest the probe: every round must give the same
 * fault, the one the SDM defines, and the instruction's result:
 *   load, store            MOV r32, [m] / MOV [m], r32: CR2 = the address, W/R = 0 / 1
 *   moffs load and store   MOV EAX, [moffs32] (A1) / MOV [moffs32], EAX (A3)
 *   call and jmp [m]       the target pointer's read faults (W/R = 0), before CALL's push
 *   rep movsd              from a page that is not present (CR2 = ESI, W/R = 0), into one
 *                          (CR2 = EDI, W/R = 1), after the source is read
 *   rep stosd and movsd, ECX = 0   no iteration, no access: no fault, though they are probed
 *   store, CR0.WP = 1      into a present read-only page: P = 1, W/R = 1
 *   accessed bit cleared   a hidden fault for bt (A = 0 in the PTE): no #PF at all, and the load
 *                          sets A again
 * Expected values: Intel SDM Vol. 3A §4.7 (error code P bit 0, W/R bit 1; CR2 = the faulting
 * linear address), §4.8 (the processor sets A on the access), §6.15 vector 14 (a fault: the saved
 * EIP is the faulting instruction, which runs again after IRET), Vol. 2A CALL (the target is read
 * before the return address is pushed), Vol. 2B MOVS (the source is read before the destination
 * is written), REP (ECX = 0: no iteration). */
#include "guest.inc"
#include "paging.inc"

#define TEST_PAGE 0x40000000 /* (written out in the quoted macro arguments below) */
#define ROUNDS 6

MULTIBOOT_HEADER

/* PAGE_AWAY bits: clears `bits` in the test page's PTE and invalidates its translation. */
.macro PAGE_AWAY bits
  mov test_pte_ptr, %eax
  andl $~(\bits), (%eax)
  invlpg TEST_PAGE
.endm

/* PROBE_CASE name, setup, pte_clear, insn, cr2, err: `setup` runs before every round (after the
 * page is taken away: clear `pte_clear` in its PTE, INVLPG), then the instruction at a fixed
 * EIP; checks that every round faulted once with `cr2` and `err` at that instruction. */
.macro PROBE_CASE name, setup, pte_clear, insn, cr2, err
  movl $0, probe_round
  movl $0, pg_pf_count
1:
  PAGE_AWAY \pte_clear
  \setup
2:
  \insn
  incl probe_round
  cmpl $ROUNDS, probe_round
  jb 1b
  mov pg_pf_count, %eax
  CHECK_EQ $ROUNDS, "\name: one fault per round"
  mov $(\cr2), %ebx
  mov $(\err), %ecx
  mov $2b, %edx
  call check_log
  CHECK_EQ $0, "\name: cr2, error code and saved eip of every round (mismatches)"
.endm

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, %ebx
  call pg_enable
  call pg_idt_init                  /* after CR0.PG: see paging.inc on kvm-pvm */
  /* The test page: a fresh frame, present and writable, its PTE's address kept. */
  call pg_alloc
  mov %eax, test_frame
  or $(PTE_P | PTE_RW), %eax
  mov %eax, %edx
  mov $TEST_PAGE, %eax
  call pg_map
  call pg_pte_ptr
  mov %eax, test_pte_ptr
  movl $probe_hook, pg_pf_hook
  movl $0x11223344, TEST_PAGE + 0x124
  movl $0x55667788, TEST_PAGE + 0x200
  movl $call_target, TEST_PAGE + 0x300
  movl $jmp_target, TEST_PAGE + 0x310
  movl $0xa0, TEST_PAGE + 0x400    /* the rep movsd source */
  movl $0xa1, TEST_PAGE + 0x404
  movl $0xa2, TEST_PAGE + 0x408
  movl $0xa3, TEST_PAGE + 0x40c

  PROBE_CASE "load", "mov $0x40000000 + 0x124, %edi", PTE_P, "mov (%edi), %esi", TEST_PAGE + 0x124, 0
  mov %esi, %eax
  CHECK_EQ $0x11223344, "load: the value"

  PROBE_CASE "store", "mov $0x40000000 + 0x128, %edi", PTE_P, "mov %edi, (%edi)", TEST_PAGE + 0x128, PF_W
  mov TEST_PAGE + 0x128, %eax
  CHECK_EQ $(TEST_PAGE + 0x128), "store: the value"

  PROBE_CASE "moffs load", "xor %eax, %eax", PTE_P, "mov 0x40000000 + 0x200, %eax; mov %eax, moffs_value", TEST_PAGE + 0x200, 0
  mov moffs_value, %eax
  CHECK_EQ $0x55667788, "moffs load: the value"

  PROBE_CASE "moffs store", "mov $0x99aabbcc, %eax", PTE_P, "mov %eax, 0x40000000 + 0x204", TEST_PAGE + 0x204, PF_W
  mov TEST_PAGE + 0x204, %eax
  CHECK_EQ $0x99aabbcc, "moffs store: the value"

  movl $0, call_count
  PROBE_CASE "call [m]", "mov $0x40000000 + 0x300, %edi", PTE_P, "call *(%edi)", TEST_PAGE + 0x300, 0
  mov call_count, %eax
  CHECK_EQ $ROUNDS, "call [m]: the target ran every round"

  movl $0, call_count
  PROBE_CASE "jmp [m]", "mov $0x40000000 + 0x310, %edi", PTE_P, "jmp *(%edi); jmp_back:", TEST_PAGE + 0x310, 0
  mov call_count, %eax
  CHECK_EQ $ROUNDS, "jmp [m]: the target ran every round"

  PROBE_CASE "rep movsd from", "mov $0x40000000 + 0x400, %esi; mov $copy_buf, %edi; mov $4, %ecx; cld", PTE_P, "rep movsl", TEST_PAGE + 0x400, 0
  mov copy_buf + 12, %eax
  CHECK_EQ $0xa3, "rep movsd from: the last element"
  mov %ecx, %eax
  CHECK_EQ $0, "rep movsd from: ecx"
  mov %esi, %eax
  CHECK_EQ $(TEST_PAGE + 0x410), "rep movsd from: esi"

  movl $0xb0, copy_buf
  PROBE_CASE "rep movsd into", "mov $copy_buf, %esi; mov $0x40000000 + 0x500, %edi; mov $4, %ecx; cld", PTE_P, "rep movsl", TEST_PAGE + 0x500, PF_W
  mov TEST_PAGE + 0x500, %eax
  CHECK_EQ $0xb0, "rep movsd into: the first element"
  mov %edi, %eax
  CHECK_EQ $(TEST_PAGE + 0x510), "rep movsd into: edi"

  /* ECX = 0: REP runs no iteration and makes no access, so a probe must raise nothing. The same
   * REP STOSD and REP MOVSD (two probes, longer than a JRCXZ reaches) run with ECX = 4 in the
   * first three rounds (a fault each: probed from the third) and ECX = 0 in the last three (no
   * fault), the page taken away before every round. */
  movl $0, pg_pf_count
  movl $0, probe_round
3:
  PAGE_AWAY PTE_P
  xor %ecx, %ecx
  cmpl $3, probe_round
  jae 5f
  mov $4, %ecx
5:
  mov %ecx, %edx
  mov $TEST_PAGE + 0x600, %edi
  mov $0xdeadbeef, %eax
  rep stosl
  PAGE_AWAY PTE_P
  mov %edx, %ecx
  mov $TEST_PAGE + 0x640, %esi
  mov $copy_buf, %edi
  rep movsl
  incl probe_round
  cmpl $ROUNDS, probe_round
  jb 3b
  mov pg_pf_count, %eax
  CHECK_EQ $6, "rep stosd and movsd: a fault in each of the three rounds with ecx 4 only"
  mov %esi, %eax
  CHECK_EQ $(TEST_PAGE + 0x640), "rep movsd with ecx 0: esi"
  mov %edi, %eax
  CHECK_EQ $copy_buf, "rep movsd with ecx 0: edi"
  mov pg_pf_count, %eax
  movl $1, TEST_PAGE + 0x600
  mov pg_pf_count, %ecx
  sub %eax, %ecx
  mov %ecx, %eax
  CHECK_EQ $1, "rep movsd with ecx 0: the page was away all along"

  /* CR0.WP = 1: a supervisor store into a read-only page faults with P = 1. */
  mov %cr0, %eax
  or $CR0_WP, %eax
  mov %eax, %cr0
  PROBE_CASE "store with wp", "mov $0x40000000 + 0x700, %edi", PTE_RW, "mov %edi, (%edi)", TEST_PAGE + 0x700, PF_P | PF_W
  mov TEST_PAGE + 0x700, %eax
  CHECK_EQ $(TEST_PAGE + 0x700), "store with wp: the value"

  /* A = 0 in the PTE: bt's shadow maps nothing until an access sets A (a hidden fault); the
   * guest sees no #PF, and the load sets A. */
  movl $0, pg_pf_count
  movl $0, probe_round
4:
  PAGE_AWAY PTE_A
  mov $TEST_PAGE + 0x124, %edi
  mov (%edi), %esi
  incl probe_round
  cmpl $ROUNDS, probe_round
  jb 4b
  mov pg_pf_count, %eax
  CHECK_EQ $0, "accessed bit cleared: no fault in any round"
  mov %esi, %eax
  CHECK_EQ $0x11223344, "accessed bit cleared: the value"
  mov test_pte_ptr, %eax
  mov (%eax), %eax
  and $PTE_A, %eax
  CHECK_EQ $PTE_A, "accessed bit cleared: the load set it"

  CHECKS_DONE "access_probes"

call_target:
  incl call_count
  ret

jmp_target:
  incl call_count
  jmp jmp_back

/* #PF hook (EAX = CR2, EDX = error code): logs the round's fault, gives the page back (present
 * and writable, INVLPG for the read-only case) and lets the instruction run again. */
probe_hook:
  mov probe_round, %ecx
  cmp $ROUNDS, %ecx
  jae 1f
  mov %eax, log_cr2(,%ecx,4)
  mov %edx, log_err(,%ecx,4)
  mov pg_pf_eip, %edx
  mov %edx, log_eip(,%ecx,4)
1:
  mov test_pte_ptr, %ecx
  orl $(PTE_P | PTE_RW), (%ecx)
  invlpg (%eax)
  xor %eax, %eax
  ret

/* check_log: EBX = CR2, ECX = error code, EDX = EIP wanted in every round -> EAX = mismatches. */
check_log:
  push %esi
  xor %eax, %eax
  xor %esi, %esi
1:
  cmp log_cr2(,%esi,4), %ebx
  je 2f
  inc %eax
2:
  cmp log_err(,%esi,4), %ecx
  je 3f
  inc %eax
3:
  cmp log_eip(,%esi,4), %edx
  je 4f
  inc %eax
4:
  movl $-1, log_cr2(,%esi,4)
  movl $-1, log_err(,%esi,4)
  movl $-1, log_eip(,%esi,4)
  inc %esi
  cmp $ROUNDS, %esi
  jb 1b
  pop %esi
  ret

.data
  .p2align 2
test_frame: .long 0
test_pte_ptr: .long 0
probe_round: .long 0
call_count: .long 0
moffs_value: .long 0
log_cr2: .fill ROUNDS, 4, -1
log_err: .fill ROUNDS, 4, -1
log_eip: .fill ROUNDS, 4, -1
copy_buf: .fill 8, 4, 0
