/* pgfault (Adams & Agesen's "pgfault"): a true page fault the guest handles by mapping the page.
 * Each operation is one round of demand paging: clear the present bit of TEST_PAGE's PTE, INVLPG,
 * read the page -> #PF -> the handler sets the present bit and IRETs -> the read runs again.
 * The base is the empty loop, so the figure includes the two PTE writes and the INVLPG (see
 * ptemod for their cost alone, and pgfault_skip for a fault without any PTE write). */
#include "bench.inc"

.macro BENCH_OP
  CLEAR_PTE_BITS_AND_READ 1
.endm
.macro BENCH_BASE
.endm

bench_setup:
  mov $14, %eax
  mov $pf_handler, %ebx
  mov $GATE_INTR32, %ecx
  call set_gate
  ret

pf_handler:
  orl $1, TEST_PTE
  add $4, %esp                    /* the error code */
  iret

BENCH_MAIN pgfault, 8, run_ring0, 1
