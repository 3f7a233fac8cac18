/* hypercall (KVM/ARM Table 3 "Hypercall"): the cheapest round trip into the monitor and back with
 * no device work. IA-32 has no hypercall every engine accepts (VMCALL is #UD outside VMX), so
 * vmbt uses CPUID leaf 0: it always leaves the guest under VT-x (answered in KVM's kernel part)
 * and is a callout answered inside bt's monitor. */
#include "bench.inc"

.macro BENCH_OP
  xor %eax, %eax
  cpuid
.endm
.macro BENCH_BASE
  xor %eax, %eax
.endm

bench_setup:
  ret

BENCH_MAIN hypercall, 8, run_ring0
