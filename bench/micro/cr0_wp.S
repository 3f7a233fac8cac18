/* cr0_wp: clear and set CR0.WP (two MOVs to CR0) with paging on, then a store through the
 * supervisor's view: a kernel toggling write protection around a patch of read-only text
 * (Intel SDM Vol. 3A §2.5: WP only changes whether supervisor writes honour R/W=0). */
#include "bench.inc"

#define CR0_WP 0x00010000

.macro BENCH_OP
  mov %cr0, %eax
  and $~CR0_WP, %eax
  mov %eax, %cr0
  or $CR0_WP, %eax
  mov %eax, %cr0
  movl %eax, TEST_PAGE
.endm
.macro BENCH_BASE
  mov %cr0, %eax
  movl %eax, TEST_PAGE
.endm

bench_setup:
  ret

BENCH_MAIN cr0_wp, 4, run_ring0, 1
