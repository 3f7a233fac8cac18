/* ptemod (Adams & Agesen's "ptemod"): a guest PTE update (toggles an ignored bit, 9, of a live
 * PTE) followed by INVLPG of its page. */
#include "bench.inc"

.macro BENCH_OP
  xorl $0x200, TEST_PTE
  invlpg TEST_PAGE
.endm
.macro BENCH_BASE
.endm

bench_setup:
  mov TEST_PAGE, %eax             /* the page is in use: its translation exists */
  ret

BENCH_MAIN ptemod, 8, run_ring0, 1
