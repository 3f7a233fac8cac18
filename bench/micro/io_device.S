/* io_device (KVM/ARM Table 3 "I/O User", I/O answered by a device model): IN from the 16550
 * UART's scratch register (COM1 + 7). */
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
  mov $(COM1 + 7), %edx
  call bench_timed
  popa
  ret

BENCH_MAIN io_device, 8, bench_run
