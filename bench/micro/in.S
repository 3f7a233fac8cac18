/* in (Adams & Agesen's "in"): IN AL from port 0x80 (the POST port), which the monitor answers. */
#include "bench.inc"

.macro BENCH_OP
  inb $0x80, %al
.endm
.macro BENCH_BASE
.endm

bench_setup:
  ret

BENCH_MAIN in, 8, run_ring0
