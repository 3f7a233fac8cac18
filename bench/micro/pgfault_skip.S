/* pgfault_skip: a true page fault without any page-table write. TEST_PAGE stays not present; each
 * operation reads it (MOV EAX, moffs32: 5 bytes) -> #PF -> the handler steps over the read and
 * IRETs. Fault delivery, handler and IRET only, next to pgfault's full demand-paging round. */
#include "bench.inc"

.macro BENCH_OP
  mov TEST_PAGE, %eax
.endm
.macro BENCH_BASE
.endm

bench_setup:
  andl $~1, TEST_PTE
  invlpg TEST_PAGE
  mov $14, %eax
  mov $pf_handler, %ebx
  mov $GATE_INTR32, %ecx
  call set_gate
  ret

pf_handler:
  addl $5, 4(%esp)                /* past MOV EAX, moffs32 (A1 + 4 bytes) */
  add $4, %esp                    /* the error code */
  iret

BENCH_MAIN pgfault_skip, 8, run_ring0, 1
