/* paging_smc: self-modifying code through an alias (Intel SDM Vol. 3A §11.6, §8.1.3).
 *
 * One physical code page is mapped at CODE_A (read-only, where it runs) and CODE_B (writable),
 * and is also reachable through the identity map. The SDM detects self-modification by physical
 * address on P6 and later (§11.6) and guarantees it for "store the new code, then jump to it"
 * (§8.1.3, option 1); every modification here is followed by a jump (CALL or JMP) before the
 * modified code runs:
 *   - `mov $imm, %eax; ret` at CODE_A: its immediate rewritten through CODE_B, then called at
 *     CODE_A (once, then 64 times with a new value each time), then through the identity alias;
 *   - the same function called at CODE_B sees the same bytes;
 *   - a function at CODE_A + 0x100 that rewrites its own immediate through CODE_B, then jumps to
 *     it (the store is on the page that is executing);
 *   - a whole function body replaced with REP MOVSB through CODE_B. */
#include "guest.inc"
#include "paging.inc"

#define CODE_A 0x40000000
#define CODE_B 0x40002000
#define F1 0x000              /* mov $imm, %eax; ret */
#define F2 0x100              /* patches its own immediate */
#define F3 0x300              /* body replaced by REP MOVSB */

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, kernel_pd
  mov %eax, %ebx
  call pg_alloc
  mov %eax, f_code
  /* F1 */
  movb $0xb8, F1(%eax)
  movl $0x11111111, F1 + 1(%eax)
  movb $0xc3, F1 + 5(%eax)
  /* F2 */
  mov $tpl_f2, %esi
  lea F2(%eax), %edi
  mov $(tpl_f2_end - tpl_f2), %ecx
  rep movsb
  /* F3: returns 0x0f3f3f3f */
  movb $0xb8, F3(%eax)
  movl $0x0f3f3f3f, F3 + 1(%eax)
  movb $0xc3, F3 + 5(%eax)
  lea PTE_P(%eax), %edx             /* CODE_A: read-only */
  mov $CODE_A, %eax
  call pg_map
  mov f_code, %eax
  lea PTE_P | PTE_RW(%eax), %edx    /* CODE_B: writable */
  mov $CODE_B, %eax
  call pg_map
  mov %cr0, %eax
  or $CR0_WP, %eax
  mov %eax, %cr0
  call pg_enable
  call pg_idt_init                  /* after CR0.PG: see paging.inc on kvm-pvm */

  call CODE_A + F1
  CHECK_EQ $0x11111111, "first run at A"
  movl $0x22222222, CODE_B + F1 + 1
  jmp 1f
1:
  call CODE_A + F1
  CHECK_EQ $0x22222222, "immediate rewritten through B, run at A"
  call CODE_B + F1
  CHECK_EQ $0x22222222, "the same code run at B"

  xor %esi, %esi                    /* mismatches */
  mov $64, %ecx
1:
  lea 0x0a000000(%ecx), %edx
  mov %edx, CODE_B + F1 + 1
  jmp 2f
2:
  call CODE_A + F1
  cmp %edx, %eax
  je 3f
  inc %esi
3:
  loop 1b
  mov %esi, %eax
  CHECK_EQ $0, "64 rewrites through B, each run at A (mismatches)"

  mov f_code, %edx
  movl $0x33333333, F1 + 1(%edx)    /* through the identity map */
  jmp 1f
1:
  call CODE_A + F1
  CHECK_EQ $0x33333333, "immediate rewritten through the identity map, run at A"

  mov $0x44444444, %ecx
  call CODE_A + F2
  CHECK_EQ $0x44444444, "code rewriting its own immediate through B"
  xor %esi, %esi
  mov $32, %ecx
1:
  call CODE_A + F2
  cmp %ecx, %eax
  je 2f
  inc %esi
2:
  loop 1b
  mov %esi, %eax
  CHECK_EQ $0, "32 self-rewrites through B (mismatches)"

  call CODE_A + F3
  CHECK_EQ $0x0f3f3f3f, "F3 before"
  mov $tpl_f3, %esi
  mov $CODE_B + F3, %edi
  mov $(tpl_f3_end - tpl_f3), %ecx
  rep movsb
  call CODE_A + F3
  CHECK_EQ $0x5a5a5a5a, "F3 body replaced with REP MOVSB through B"

  PF_ARM 1f
a_store:
  movl $0x66666666, CODE_A + F1 + 1
1:
  PF_CHECK "write through the read-only alias A (WP=1)", CODE_A + F1 + 1, PF_P | PF_W, a_store
  call CODE_A + F1
  CHECK_EQ $0x33333333, "the code is unchanged after the faulting write"

  CHECKS_DONE "paging_smc"

/* F2 template (position-dependent only through CODE_B): ECX = the value to return. */
tpl_f2:
  mov %ecx, CODE_B + F2 + (tpl_f2_imm - tpl_f2)
  jmp 1f
1:
  .byte 0xb8                        /* mov $imm32, %eax */
tpl_f2_imm:
  .long 0
  ret
tpl_f2_end:

/* F3 replacement: a different instruction sequence. */
tpl_f3:
  xor %eax, %eax
  add $0x2d2d2d2d, %eax
  add %eax, %eax
  ret
tpl_f3_end:

.data
  .p2align 2
kernel_pd: .long 0
f_code: .long 0
