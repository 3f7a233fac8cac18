/* call_ret (Adams & Agesen's "call/ret"): a near CALL to a function that only RETs. */
#include "bench.inc"

.macro BENCH_OP
  call empty_function
.endm
.macro BENCH_BASE
.endm

bench_setup:
  ret

empty_function:
  ret

BENCH_MAIN call_ret, 8, run_ring0
