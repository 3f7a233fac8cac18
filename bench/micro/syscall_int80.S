/* syscall_int80 (Adams & Agesen's "syscall"): a system-call round trip from CPL 3 through a DPL-3
 * interrupt gate, INT 0x80, to a ring-0 handler that only IRETs. */
#include "bench.inc"

.macro BENCH_OP
  int $0x80
.endm
.macro BENCH_BASE
.endm

bench_setup:
  call tss_init
  mov $0x80, %eax
  mov $syscall_handler, %ebx
  mov $GATE_INTR32_DPL3, %ecx
  call set_gate
  ret

syscall_handler:
  iret

BENCH_MAIN syscall_int80, 8, run_ring3_iret
