/* trap (KVM/ARM Table 3 "Trap"): a trap handled in the guest: INT3 to a ring-0 handler that
 * IRETs. */
#include "bench.inc"

.macro BENCH_OP
  int3
.endm
.macro BENCH_BASE
.endm

bench_setup:
  mov $3, %eax
  mov $bp_handler, %ebx
  mov $GATE_INTR32, %ecx
  call set_gate
  ret

bp_handler:
  iret

BENCH_MAIN trap, 8, run_ring0
