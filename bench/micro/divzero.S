/* divzero (Adams & Agesen's "divzero"): DIV by zero raises #DE; the guest's handler steps over
 * the 2-byte DIV ECX and IRETs. The base divides by one. */
#include "bench.inc"

.macro BENCH_OP
  xor %edx, %edx
  mov $1, %eax
  xor %ecx, %ecx
  div %ecx
.endm
.macro BENCH_BASE
  xor %edx, %edx
  mov $1, %eax
  mov $1, %ecx
  div %ecx
.endm

bench_setup:
  mov $0, %eax
  mov $de_handler, %ebx
  mov $GATE_INTR32, %ecx
  call set_gate
  ret

de_handler:
  addl $2, (%esp)                 /* past DIV ECX (F7 F1) */
  iret

BENCH_MAIN divzero, 8, run_ring0
