/* cpuid: CPUID leaf 1 (family, model and feature flags). */
#include "bench.inc"

.macro BENCH_OP
  mov $1, %eax
  cpuid
.endm
.macro BENCH_BASE
  mov $1, %eax
.endm

bench_setup:
  ret

BENCH_MAIN cpuid, 8, run_ring0
