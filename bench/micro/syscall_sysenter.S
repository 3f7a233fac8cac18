/* syscall_sysenter (Adams & Agesen's "syscall", the fast way): SYSENTER from CPL 3 to a ring-0
 * handler that returns with SYSEXIT (the handler also tests one flag: the runner's way back). */
#include "bench.inc"

.macro BENCH_OP
  mov $1f, %edx
  mov %esp, %ecx
  sysenter
1:
.endm
.macro BENCH_BASE
  mov $1f, %edx
  mov %esp, %ecx
1:
.endm

bench_setup:
  ret

BENCH_MAIN syscall_sysenter, 8, run_ring3_sysexit
