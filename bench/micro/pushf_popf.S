/* pushf_popf: PUSHF then POPF (EFLAGS through the stack, IF and IOPL included). */
#include "bench.inc"

.macro BENCH_OP
  pushf
  popf
.endm
.macro BENCH_BASE
.endm

bench_setup:
  ret

BENCH_MAIN pushf_popf, 8, run_ring0
