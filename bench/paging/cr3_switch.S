/* cr3_switch: context-switch-heavy micro-benchmark. Two address spaces map DATA to different
 * frames; each iteration loads CR3 with space A, increments the word at DATA, loads CR3 with
 * space B and increments it there. Reports cycles per switch (one CR3 load plus one
 * read-modify-write in the new space), then cycles per increment with no switch as a baseline. */
#include "guest.inc"
#include "paging.inc"
#include "bench.inc"

#define DATA 0x40000000
#define ITERS 20000

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, pd_a
  call pg_new_pd
  mov %eax, pd_b
  call pg_alloc
  mov %eax, f_a
  lea PTE_P | PTE_RW(%eax), %edx
  mov pd_a, %ebx
  mov $DATA, %eax
  call pg_map
  call pg_alloc
  mov %eax, f_b
  lea PTE_P | PTE_RW(%eax), %edx
  mov pd_b, %ebx
  mov $DATA, %eax
  call pg_map
  mov pd_a, %ebx
  call pg_enable
  call pg_idt_init                  /* after CR0.PG: see tests/guests/paging.inc */

  mov pd_a, %esi
  mov pd_b, %edi
  BENCH_START
  mov $ITERS, %ecx
1:
  mov %esi, %cr3
  incl DATA
  mov %edi, %cr3
  incl DATA
  dec %ecx
  jnz 1b
  BENCH_STOP cr3_switch.switch, 2*ITERS

  BENCH_START
  mov $ITERS, %ecx
1:
  incl DATA
  incl DATA
  dec %ecx
  jnz 1b
  BENCH_STOP cr3_switch.no_switch, 2*ITERS

  mov f_a, %eax
  cmpl $ITERS, (%eax)
  jne 9f
  mov f_b, %eax
  cmpl $(3 * ITERS), (%eax)
  jne 9f
  EXIT(0)
9:
  BENCH_FAIL "cr3_switch: a space saw the other's data"

.data
  .p2align 2
pd_a: .long 0
pd_b: .long 0
f_a: .long 0
f_b: .long 0
