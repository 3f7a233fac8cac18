/*
 * realmode_loop: the rate of ordinary 16-bit code in real-address mode (issue 12's real-mode
 * benchmark): the timed loops run at CS = FFFF (this guest sits just above 1 MiB, below FFFF:FFFF)
 * with 16-bit operands and addressing, DS, ES and SS kept flat from protected mode ("big real"
 * mode, so the harness's variables above 1 MiB stay reachable with 32-bit addresses). The body:
 * a load through [bx+si], an add, an increment and a mask, four instructions.
 */
#include "bench.inc"

#define RM_BASE 0xffff0         /* CS = FFFF in real mode: base 0xFFFF0 */
#define CODE16_SEL 0x30         /* 16-bit code, base RM_BASE, limit 0xFFFF */

.macro BENCH_OP
  mov (%bx,%si), %ax
  add %ax, %dx
  inc %si
  and $0xff, %si
.endm
.macro BENCH_BASE
.endm

bench_setup:
  /* The harness's GDT with a 16-bit code segment at 0x30 (entry 6). */
  mov $gdt_rm, %edi
  mov $gdt, %esi
  mov $6 * 8, %ecx
  rep movsb
  lgdt gdt_rm_desc
  ret

  .code32
run_real_mode:
  pusha
  mov %esp, rm_saved_esp
  /* Far pointers to the 16-bit code as offsets from RM_BASE (computed here: the assembler cannot
   * put a link-time difference in a 16-bit field). */
  mov $pm16, %eax
  sub $RM_BASE, %eax
  mov %eax, pm16_ptr
  movw $CODE16_SEL, pm16_ptr + 4
  mov $real_entry, %eax
  sub $RM_BASE, %eax
  mov %ax, real_ptr
  movw $0xffff, real_ptr + 2
  ljmp *pm16_ptr

  .code16
pm16:
  mov %cr0, %eax
  and $0xfffffffe, %eax
  mov %eax, %cr0
  mov $real_ptr, %edi
  ljmp *(%edi)
real_entry:
  /* Real mode; DS, ES and SS keep their flat 4 GiB limits and base 0 from protected mode. */
  xor %bx, %bx
  xor %si, %si
  /* The harness's variables sit above 1 MiB: reached through EDI (32-bit addressing, 67h). */
  mov $WARMUP_ITERS, %ebp
  call rm_timed_base
  mov $WARMUP_ITERS, %ebp
  call rm_timed_op
  mov $iters, %edi
  mov (%edi), %ebp
  call rm_timed_base
  mov $t_base, %edi
  mov %eax, (%edi)
  mov %edx, 4(%edi)
  mov $iters, %edi
  mov (%edi), %ebp
  call rm_timed_op
  mov $t_op, %edi
  mov %eax, (%edi)
  mov %edx, 4(%edi)
  /* Back to protected mode and the 32-bit runner. */
  mov %cr0, %eax
  or $1, %eax
  mov %eax, %cr0
  .byte 0x66, 0xea
  .long rm_back
  .word KCODE

.macro RM_TIMED_LOOP body
  rdtsc
  mov $t_start, %edi
  mov %eax, (%edi)
  mov %edx, 4(%edi)
7531:
  .rept 8
  \body
  .endr
  dec %ebp
  jnz 7531b
  rdtsc
  mov $t_start, %edi
  sub (%edi), %eax
  sbb 4(%edi), %edx
.endm

rm_timed_base:
  RM_TIMED_LOOP BENCH_BASE
  ret
rm_timed_op:
  RM_TIMED_LOOP BENCH_OP
  ret

  .code32
rm_back:
  mov $KDATA, %eax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov rm_saved_esp, %esp
  lgdt gdt_rm_desc
  popa
  ret

  .data
  .p2align 3
gdt_rm:
  .fill 6, 8, 0
  .word 0xffff, RM_BASE & 0xffff
  .byte (RM_BASE >> 16) & 0xff, 0x9b, 0x00, (RM_BASE >> 24) & 0xff  /* 0x30: 16-bit code */
gdt_rm_end:
  .p2align 2
gdt_rm_desc:
  .word gdt_rm_end - gdt_rm - 1
  .long gdt_rm
rm_saved_esp: .long 0
pm16_ptr: .long 0       /* m16:32: CODE16_SEL:pm16 */
  .word 0
real_ptr: .long 0       /* m16:16: FFFF:real_entry */
  .text

BENCH_MAIN realmode_loop, 8, run_real_mode
