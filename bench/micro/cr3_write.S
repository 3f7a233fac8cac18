/* cr3_write: MOV to CR3 with paging on (the same page directory: a TLB flush). IA-32's nearest
 * to Adams & Agesen's "cr8wr", which writes the 64-bit-only task-priority register CR8. */
#include "bench.inc"

.macro BENCH_OP
  mov %esi, %cr3
.endm
.macro BENCH_BASE
  mov %esi, %eax
.endm

bench_setup:
  ret

bench_run:
  pusha
  mov $page_dir, %esi
  call bench_timed
  popa
  ret

BENCH_MAIN cr3_write, 8, bench_run, 1
