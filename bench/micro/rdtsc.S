/* rdtsc: RDTSC. */
#include "bench.inc"

.macro BENCH_OP
  rdtsc
.endm
.macro BENCH_BASE
.endm

bench_setup:
  ret

BENCH_MAIN rdtsc, 8, run_ring0
