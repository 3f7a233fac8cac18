/* trace_census: the guest of `vmbt trace`'s test (tests/unit/cli_trace_test.cpp): its callouts
 * are known exactly, from this source:
 *   _start  OUT x3 (mask both PICs; isa-debug-exit, which ends the run), CPUID x1
 *   loud    STI x2
 *   quiet   CLI x3
 *   emit    OUT x3 ("ok\n" to COM1's transmit register, without polling LSR)
 * Nothing else traps: no GDT or segment loads (the Multiboot segments are flat), no IN.
 * It prints "ok" and exits with code 0 (vmbt status 1). */
#define MB_HEADER_MAGIC 0x1BADB002
#define MB_HEADER_FLAGS 0x00000003

.section .note.GNU-stack, "", @progbits

.pushsection .multiboot, "a"
  .p2align 2
  .long MB_HEADER_MAGIC
  .long MB_HEADER_FLAGS
  .long -(MB_HEADER_MAGIC + MB_HEADER_FLAGS)
.popsection

.bss
  .p2align 4
  .skip 4096
stack_top:

.text
  .globl _start
  .type _start, @function
_start:
  mov $stack_top, %esp
  mov $0xff, %al
  outb %al, $0x21
  outb %al, $0xa1
  call loud
  call quiet
  xor %eax, %eax
  cpuid
  call emit
  xor %al, %al
  outb %al, $0xf4
1:
  hlt
  jmp 1b
  .size _start, . - _start

  .type loud, @function
loud:
  sti
  nop
  sti
  ret
  .size loud, . - loud

  .type quiet, @function
quiet:
  cli
  cli
  cli
  ret
  .size quiet, . - quiet

  .type emit, @function
emit:
  mov $0x3f8, %dx
  mov $0x6f, %al                  /* 'o' */
  outb %al, %dx
  mov $0x6b, %al                  /* 'k' */
  outb %al, %dx
  mov $0x0a, %al
  outb %al, %dx
  ret
  .size emit, . - emit
