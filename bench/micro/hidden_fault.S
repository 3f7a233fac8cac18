/* hidden_fault: a fault the guest never sees. Each operation clears the accessed bit of
 * TEST_PAGE's PTE (a change the shadow MMU must honour: the next access sets A again), INVLPGs and
 * reads the page. Under bt the read takes a hidden fault (the shadow walks, sets A, maps the
 * page and retries); a CPU's TLB miss does the same walk in hardware. The base is the empty
 * loop, so the figure includes the PTE write and the INVLPG (ptemod: their cost alone). */
#include "bench.inc"

.macro BENCH_OP
  CLEAR_PTE_BITS_AND_READ 0x20
.endm
.macro BENCH_BASE
.endm

bench_setup:
  ret

BENCH_MAIN hidden_fault, 8, run_ring0, 1
