/* cli_sti: CLI then STI (every PIC line is masked: no interrupt arrives in between). */
#include "bench.inc"

.macro BENCH_OP
  cli
  sti
.endm
.macro BENCH_BASE
.endm

bench_setup:
  ret

run_and_cli:
  call run_ring0
  cli
  ret

BENCH_MAIN cli_sti, 8, run_and_cli
