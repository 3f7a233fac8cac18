/* ptemod: PTE-update-heavy micro-benchmark. Each update points the PTE of DATA to the other of
 * two frames, invalidates it with INVLPG and reads DATA (which must show the new frame): cycles
 * per update (PTE store + INVLPG + the access that refills the translation), reported per chunk
 * of CHUNK updates so that a cost growing with the number of updates so far shows. Then cycles
 * per read of DATA with no update, as a baseline. */
#include "guest.inc"
#include "paging.inc"
#include "bench.inc"

#define DATA 0x40000000
#define CHUNK 128                 /* updates per reported chunk */
#define BASELINE 8192             /* reads in the baseline loop */

/* CHUNK updates (CHUNK / 2 round trips frame 1 -> frame 0); wrong reads counted in EBX. */
.macro UPDATE_CHUNK name
  BENCH_START
  mov $(CHUNK / 2), %ecx
1:
  mov %edi, (%ebp)                  /* -> frame 1 */
  invlpg DATA
  cmpl $1, DATA
  je 2f
  inc %ebx
2:
  mov %esi, (%ebp)                  /* -> frame 0 */
  invlpg DATA
  cmpl $0, DATA
  je 3f
  inc %ebx
3:
  dec %ecx
  jnz 1b
  BENCH_STOP \name, CHUNK
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, %ebx
  call pg_alloc
  mov %eax, %esi
  movl $0, (%esi)
  or $(PTE_P | PTE_RW), %esi        /* PTE value for frame 0 */
  call pg_alloc
  mov %eax, %edi
  movl $1, (%edi)
  or $(PTE_P | PTE_RW), %edi        /* PTE value for frame 1 */
  mov %esi, %edx
  mov $DATA, %eax
  call pg_map
  call pg_pte_ptr
  mov %eax, %ebp                    /* the PTE */
  call pg_enable
  call pg_idt_init                  /* after CR0.PG: see tests/guests/paging.inc */

  xor %ebx, %ebx                    /* wrong reads */
  UPDATE_CHUNK ptemod.update_0-127
  UPDATE_CHUNK ptemod.update_128-255
  UPDATE_CHUNK ptemod.update_256-383
  UPDATE_CHUNK ptemod.update_384-511
  test %ebx, %ebx
  jnz 9f

  cmpl $0, DATA                     /* the translation is filled again before timing */
  BENCH_START
  mov $(BASELINE / 2), %ecx
1:
  cmpl $0, DATA
  je 2f
  inc %ebx
2:
  cmpl $0, DATA
  je 3f
  inc %ebx
3:
  dec %ecx
  jnz 1b
  BENCH_STOP ptemod.read_only, BASELINE
  EXIT(0)
9:
  BENCH_FAIL "ptemod: a read after a PTE change and INVLPG saw the old frame"
