/* io_monitor (KVM/ARM Table 3 "I/O Kernel", I/O answered by the monitor itself): IN from port
 * 0x104, which no device claims: vmbt's I/O bus answers all ones. */
#include "bench.inc"

.macro BENCH_OP
  inb %dx, %al
.endm
.macro BENCH_BASE
.endm

bench_setup:
  ret

bench_run:
  pusha
  mov $0x104, %edx
  call bench_timed
  popa
  ret

BENCH_MAIN io_monitor, 8, bench_run
