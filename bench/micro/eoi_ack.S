/* eoi_ack (KVM/ARM Table 3 "EOI+ACK"), on the 8259A: a non-specific EOI (OCW2 0x20) and a read of
 * the in-service register (OCW3 0x0b, then IN from port 0x20). */
#include "bench.inc"

.macro BENCH_OP
  mov $0x20, %al
  outb %al, $0x20
  mov $0x0b, %al
  outb %al, $0x20
  inb $0x20, %al
.endm
.macro BENCH_BASE
  mov $0x20, %al
  mov $0x0b, %al
.endm

bench_setup:
  ret

BENCH_MAIN eoi_ack, 8, run_ring0
