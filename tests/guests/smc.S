/* smc: self-modifying code. A translator that caches translations must notice every guest write
 * to code it has translated (Intel SDM Vol. 3A §11.6 "Self-Modifying Code": a write to a
 * code location invalidates the cached or prefetched instruction; on the P6 family and later
 * this is checked for the prefetched next instruction too, and Vol. 3A §8.1.3 guarantees the new
 * code after a jump). One line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..".
 * Exits with 0 when every check passed (status 1).
 *
 *  - a function whose MOV immediate is rewritten (dword, then byte) between calls;
 *  - code written into a buffer, executed, rewritten with REP MOVSB (different instruction
 *    boundaries), executed again; code written by REP INSB from a port;
 *  - a store into the executing block followed by a JMP to the modified instruction, and a
 *    store to the very next instruction without a jump (P6 behaviour);
 *  - a loop that increments its own ADD immediate each iteration (sum 0..9 = 45);
 *  - a store through a segment with a non-zero base (same linear address);
 *  - an instruction whose immediate crosses a 4 KiB boundary, modified in the second page;
 *    a block that starts in one page and is modified in the next;
 *  - overlapping instructions: the same bytes entered at two offsets decode differently;
 *  - many data writes to the page of the running code: the loop still counts right. */
#include "guest.inc"

#define ES_BASE_SEL 0x30        /* data, base 0x1000 */

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT
  /* First the cases that write to pages other than the running code's. */
  call test_overlap
  call test_buffer
  call test_page_crossing
  call test_patch_function
  call test_same_block
  call test_loop
  call test_data_on_code_page
  call test_segment_base
  CHECKS_DONE "smc"

patched:
  mov $0x11111111, %eax             /* b8 imm32: the immediate is at patched + 1 */
  ret

test_patch_function:
  call patched
  CHECK_EQ $0x11111111, "patched function before"
  movl $0x22222222, patched + 1
  call patched
  CHECK_EQ $0x22222222, "patched function after a dword store"
  movb $0x33, patched + 1
  call patched
  CHECK_EQ $0x22222233, "patched function after a byte store"
  ret

/* Writes the bytes [ESI, ESI+ECX) to code_buf with REP MOVSB. */
copy_code:
  push %edi
  mov $code_buf, %edi
  cld
  rep movsb
  pop %edi
  ret

test_buffer:
  mov $code_mov44, %esi
  mov $6, %ecx
  call copy_code
  call code_buf
  CHECK_EQ $0x44444444, "code written to a buffer"
  mov $code_mov55, %esi
  mov $6, %ecx
  call copy_code
  call code_buf
  CHECK_EQ $0x55555555, "buffer rewritten by rep movsb"
  mov $code_inc2, %esi
  mov $5, %ecx
  call copy_code
  call code_buf
  CHECK_EQ $2, "buffer rewritten with other instruction boundaries"

  /* REP INSB: four 0x40 bytes (INC EAX) from the UART scratch register, then RET. */
  movb $0xc3, code_buf
  xor %eax, %eax
  call code_buf
  CHECK_EQ $0, "buffer holding ret"
  movb $0xc3, code_buf + 4
  mov $COM1 + 7, %dx
  mov $0x40, %al
  outb %al, %dx
  mov $code_buf, %edi
  mov $4, %ecx
  rep insb
  xor %eax, %eax
  call code_buf
  CHECK_EQ $4, "code written by rep insb"
  ret

test_same_block:
  movb $0x02, 2f + 1                /* mov $imm8, %al is b0 ib */
  jmp 2f
2:
  mov $0x01, %al
  movzbl %al, %eax
  CHECK_EQ $2, "store into the running block, then jmp to it"
  movb $0x01, 2b + 1

  mov $0, %eax
  movb $0x02, 3f + 1
3:
  mov $0x01, %al
  movzbl %al, %eax
  CHECK_EQ $2, "store to the next instruction without a jump"
  movb $0x01, 3b + 1
  ret

test_loop:
  xor %ebx, %ebx
  mov $10, %ecx
  movb $0, 4f + 2
4:
  add $0, %ebx                      /* 83 c3 ib: the immediate is at 4b + 2 */
  incb 4b + 2
  loop 4b
  mov %ebx, %eax
  CHECK_EQ $45, "loop incrementing its own immediate"
  ret

patched2:
  mov $0x11111111, %eax
  ret

test_segment_base:
  mov $ES_BASE_SEL, %ax
  mov %ax, %es
  call patched2
  movl $0x66666666, %es:patched2 + 1 - 0x1000
  mov $DATA_SEL, %ax
  mov %ax, %es
  call patched2
  CHECK_EQ $0x66666666, "store through a segment with base 0x1000"
  ret

/* page_buf is 4 KiB aligned; page_buf + 0x1000 starts the second page. */
test_page_crossing:
  mov $page_buf + 0xffd, %edi       /* b8 at 0xffd, imm32 at 0xffe-0x1001, c3 at 0x1002 */
  movb $0xb8, (%edi)
  movl $0x12345678, 1(%edi)
  movb $0xc3, 5(%edi)
  call *%edi
  CHECK_EQ $0x12345678, "instruction across a page boundary"
  movb $0x9a, page_buf + 0x1001     /* the immediate's high byte, in the second page */
  call *%edi
  CHECK_EQ $0x9a345678, "modified in its second page"

  mov $page_buf + 0x1ffe, %edi      /* nop nop | mov $imm32, %eax ; ret in the next page */
  movw $0x9090, (%edi)
  movb $0xb8, 2(%edi)
  movl $0x0badf00d, 3(%edi)
  movb $0xc3, 7(%edi)
  call *%edi
  CHECK_EQ $0x0badf00d, "block starting in the page before"
  movl $0x600dbeef, page_buf + 0x2001
  call *%edi
  CHECK_EQ $0x600dbeef, "block modified in its second page"
  ret

/* b8 40 40 40 90 c3: at +0 "mov $0x90404040, %eax; ret", at +1 "inc eax x3; nop; ret". */
test_overlap:
  xor %eax, %eax
  call overlap + 1
  CHECK_EQ $3, "overlapping instructions entered at +1"
  call overlap
  CHECK_EQ $0x90404040, "overlapping instructions entered at +0"
  xor %eax, %eax
  call overlap + 1
  CHECK_EQ $3, "overlapping instructions entered at +1 again"
  ret
overlap:
  .byte 0xb8, 0x40, 0x40, 0x40, 0x90, 0xc3

/* 1000 stores to a counter that lives in the running code's page. */
test_data_on_code_page:
  movl $0, code_page_counter
  mov $1000, %ecx
5:
  incl code_page_counter
  loop 5b
  mov code_page_counter, %eax
  CHECK_EQ $1000, "1000 data writes to the running code's page"
  ret
  .p2align 2
code_page_counter:
  .long 0

.section .rodata
code_mov44: .byte 0xb8, 0x44, 0x44, 0x44, 0x44, 0xc3       /* mov $0x44444444, %eax; ret */
code_mov55: .byte 0xb8, 0x55, 0x55, 0x55, 0x55, 0xc3
code_inc2: .byte 0x31, 0xc0, 0x40, 0x40, 0xc3              /* xor %eax, %eax; inc; inc; ret */

.data
  .p2align 3
gdt:
  GDT_STANDARD_ENTRIES
  SEG_DESC 0x1000, 0xfffff, 0x93, 0xc   /* 0x30: data, base 0x1000 */
  GDT_END

.bss
  .p2align 12
code_buf:
  .skip 4096
page_buf:
  .skip 3 * 4096
