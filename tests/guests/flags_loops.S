/* flags_loops: the loops, string instructions, stack idioms and odd operand forms a translator
 * must get exactly right (Intel SDM Vol. 2 for each instruction; Vol. 1 §7.3.9 for strings).
 * One line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every
 * check passed (status 1).
 *
 *  - LOOP/LOOPE/LOOPNE/JECXZ: ECX = 1, early exits on ZF, ECX = 0 with ZF still 1, JCXZ and
 *    LOOP with a 16-bit address size use CX only, LOOP leaves the flags alone.
 *  - REP MOVSB/STOSD with DF = 0 and 1, overlapping source and destination (the element-by-
 *    element result, not memmove's), ECX = 0; REPE CMPSB (mismatch: ECX, ESI, EDI, ZF, CF),
 *    REPNE SCASB (strlen); MOVSB/LODSD with a segment override.
 *  - PUSHA/POPA (the pushed ESP, POPA ignoring it), PUSH ESP, POP ESP, POP (%esp), PUSH imm8,
 *    PUSHW; ENTER with nesting level 0 and LEAVE (levels 1 and 2 are in bcd_enter.S).
 *  - XLAT (AL unsigned), CMPXCHG8B success and failure, CMPXCHG, BSWAP, XADD (memory, same
 *    register, carry out).
 *  - High-byte registers AH/BH/CH/DH with memory operands (MOV, ADD, XCHG, CMP, XADD, SIB and
 *    ESP/EBP-based addresses), SETC AH, LAHF/SAHF.
 *  - Flags kept across memory accesses, block boundaries, CLI and port I/O; SHL by 0 keeps CF;
 *    shift counts masked to 5 bits; 16-bit INC wraps in CX only.
 *  - Addressing forms: SIB without a base (disp32 + index*scale) for load, store and LEA,
 *    EBP with disp8 0, ESP base, base + index*scale + negative disp8. */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  call test_loops
  call test_strings
  call test_stack
  call test_exchange
  call test_high_bytes
  call test_flags
  call test_addressing
  /* Last: forms an engine might not translate at all. */
  call test_addr16_loops
  call test_string_overrides
  CHECKS_DONE "flags_loops"

/* ---- LOOP family ---- */
test_loops:
  xor %ebx, %ebx
  mov $1, %ecx
1:
  inc %ebx
  loop 1b
  mov %ebx, %eax
  CHECK_EQ $1, "loop with ecx=1 runs once"
  mov %ecx, %eax
  CHECK_EQ $0, "loop with ecx=1 leaves ecx=0"

  xor %ebx, %ebx
  mov $5, %ecx
1:
  inc %ebx
  loop 1b
  mov %ebx, %eax
  CHECK_EQ $5, "loop with ecx=5 runs 5 times"

  mov $arr_77797, %esi              /* 7 7 7 9 7: stop at the first mismatch */
  mov $5, %ecx
1:
  cmpl $7, (%esi)
  lea 4(%esi), %esi                 /* LEA keeps the flags */
  loope 1b
  setz %al
  movzbl %al, %eax
  CHECK_EQ $0, "loope exit on mismatch: zf"
  mov %ecx, %eax
  CHECK_EQ $1, "loope exit on mismatch: ecx"
  mov %esi, %eax
  CHECK_EQ $arr_77797+16, "loope exit on mismatch: esi"

  mov $arr_12375, %esi              /* 1 2 3 7 5: stop at the first 7 */
  mov $5, %ecx
1:
  cmpl $7, (%esi)
  lea 4(%esi), %esi
  loopne 1b
  setz %al
  movzbl %al, %eax
  CHECK_EQ $1, "loopne exit on match: zf"
  mov %ecx, %eax
  CHECK_EQ $1, "loopne exit on match: ecx"

  mov $arr_77797, %esi              /* 7 7 7: ECX reaches 0 with ZF = 1 */
  mov $3, %ecx
1:
  cmpl $7, (%esi)
  lea 4(%esi), %esi
  loope 1b
  setz %al
  movzbl %al, %eax
  CHECK_EQ $1, "loope exit on ecx=0: zf"
  mov %ecx, %eax
  CHECK_EQ $0, "loope exit on ecx=0: ecx"

  xor %eax, %eax
  xor %ecx, %ecx
  jecxz 1f
  mov $1, %eax
1:
  CHECK_EQ $0, "jecxz with ecx=0 jumps"
  xor %eax, %eax
  mov $1, %ecx
  jecxz 1f
  mov $1, %eax
1:
  CHECK_EQ $1, "jecxz with ecx=1 falls through"
  xor %eax, %eax
  mov $0x10000, %ecx
  jecxz 1f
  mov $1, %eax
1:
  CHECK_EQ $1, "jecxz with ecx=0x10000 falls through"

  mov $2, %ecx
  stc
1:
  loop 1b
  setc %al
  movzbl %al, %eax
  CHECK_EQ $1, "loop keeps cf"
  ret

/* JCXZ and LOOP with a 16-bit address size (prefix 0x67) use CX, not ECX. */
test_addr16_loops:
  xor %eax, %eax
  mov $0x10000, %ecx
  jcxz 1f                           /* 67 e3: tests CX */
  mov $1, %eax
1:
  CHECK_EQ $0, "jcxz with ecx=0x10000 jumps"

  xor %ebx, %ebx
  mov $0x10001, %ecx
1:
  inc %ebx
  addr16 loop 1b                    /* 67 e2: decrements CX */
  mov %ebx, %eax
  CHECK_EQ $1, "loop with 16-bit address size runs once for cx=1"
  mov %ecx, %eax
  CHECK_EQ $0x10000, "loop with 16-bit address size keeps ecx[31:16]"
  ret

/* ---- strings ---- */
/* Fills buf with "abcdefgh" and zeros after. */
reset_buf:
  movl $0x64636261, buf
  movl $0x68676665, buf + 4
  movl $0, buf + 8
  movl $0, buf + 12
  ret

test_strings:
  cld
  call reset_buf
  mov $buf, %esi
  mov $buf + 8, %edi
  mov $8, %ecx
  rep movsb
  mov buf + 12, %eax
  CHECK_EQ $0x68676665, "rep movsb forward copy"
  mov %esi, %eax
  CHECK_EQ $buf+8, "rep movsb esi"
  mov %edi, %eax
  CHECK_EQ $buf+16, "rep movsb edi"
  mov %ecx, %eax
  CHECK_EQ $0, "rep movsb ecx"

  call reset_buf                    /* dst = src + 1, forward: the first byte repeats */
  mov $buf, %esi
  mov $buf + 1, %edi
  mov $5, %ecx
  rep movsb
  mov buf, %eax
  CHECK_EQ $0x61616161, "rep movsb overlapping forward bytes 0-3"
  mov buf + 4, %eax
  CHECK_EQ $0x68676161, "rep movsb overlapping forward bytes 4-7"

  call reset_buf                    /* dst = src - 1, backward: the last byte repeats */
  mov $buf + 5, %esi
  mov $buf + 4, %edi
  mov $5, %ecx
  std
  rep movsb
  cld
  mov buf, %eax
  CHECK_EQ $0x66666666, "rep movsb df=1 overlapping bytes 0-3"
  mov buf + 4, %eax
  CHECK_EQ $0x68676666, "rep movsb df=1 overlapping bytes 4-7"
  mov %esi, %eax
  CHECK_EQ $buf, "rep movsb df=1 esi"
  mov %edi, %eax
  CHECK_EQ $buf-1, "rep movsb df=1 edi"

  call reset_buf                    /* backward copy without overlap */
  mov $buf + 7, %esi
  mov $buf + 15, %edi
  mov $8, %ecx
  std
  rep movsb
  cld
  mov buf + 8, %eax
  CHECK_EQ $0x64636261, "rep movsb df=1 copy"

  mov $buf + 12, %edi
  mov $0x11223344, %eax
  mov $4, %ecx
  std
  rep stosl
  cld
  mov buf, %eax
  CHECK_EQ $0x11223344, "rep stosd df=1 fills down to buf"
  mov %edi, %eax
  CHECK_EQ $buf-4, "rep stosd df=1 edi"

  call reset_buf
  mov $buf, %edi
  mov $0x99999999, %eax
  xor %ecx, %ecx
  rep stosl
  mov %edi, %eax
  CHECK_EQ $buf, "rep stosd with ecx=0 leaves edi"
  mov buf, %eax
  CHECK_EQ $0x64636261, "rep stosd with ecx=0 stores nothing"

  mov $str_abcdx, %esi
  mov $str_abcdy, %edi
  mov $6, %ecx
  repe cmpsb
  setz %al
  setc %ah
  movzwl %ax, %eax
  CHECK_EQ $0x0100, "repe cmpsb mismatch: zf=0 cf=1"
  mov %ecx, %eax
  CHECK_EQ $1, "repe cmpsb mismatch: ecx"
  mov %esi, %eax
  CHECK_EQ $str_abcdx+5, "repe cmpsb mismatch: esi"
  mov %edi, %eax
  CHECK_EQ $str_abcdy+5, "repe cmpsb mismatch: edi"

  mov $str_abcdx, %esi
  mov $str_abcdx2, %edi
  mov $6, %ecx
  repe cmpsb
  setz %al
  movzbl %al, %eax
  CHECK_EQ $1, "repe cmpsb equal: zf"
  mov %ecx, %eax
  CHECK_EQ $0, "repe cmpsb equal: ecx"

  mov $str_hello, %edi
  xor %eax, %eax
  mov $-1, %ecx
  repne scasb
  mov %ecx, %eax
  CHECK_EQ $0xfffffff9, "repne scasb strlen: ecx"
  not %ecx
  dec %ecx
  mov %ecx, %eax
  CHECK_EQ $5, "repne scasb strlen"
  mov %edi, %eax
  CHECK_EQ $str_hello+6, "repne scasb strlen: edi"
  ret

test_string_overrides:
  call reset_buf
  mov $buf, %esi
  mov $buf + 8, %edi
  movsb %es:(%esi), %es:(%edi)      /* 26 a4: ES source */
  movzbl buf + 8, %eax
  CHECK_EQ $0x61, "movsb with an es source override"
  mov $buf, %esi
  lodsl %fs:(%esi), %eax            /* 64 ad */
  CHECK_EQ $0x64636261, "lodsd with an fs override"
  ret

/* ---- stack ---- */
test_stack:
  mov %esp, %ebp
  mov $0xa1, %eax
  mov $0xc1, %ecx
  mov $0xd1, %edx
  mov $0xb1, %ebx
  mov $0x51, %esi
  mov $0xd7, %edi
  push %ebp
  mov $0xbb, %ebp
  pusha
  mov 12(%esp), %eax                /* the ESP slot: ESP before PUSHA */
  lea 32(%esp), %edx
  CHECK "pusha pushes the original esp"
  mov 8(%esp), %eax                 /* the EBP slot */
  CHECK_EQ $0xbb, "pusha pushes ebp"
  movl $0x12345678, 12(%esp)        /* POPA ignores the ESP slot */
  mov $0, %eax
  mov $0, %ebx
  popa
  lea 4(%esp), %ecx                 /* ESP after popa + the push %ebp */
  pop %ebp
  cmp %ecx, %ebp
  sete %cl
  movzbl %cl, %ecx
  mov %ecx, %eax
  CHECK_EQ $1, "popa ignores the pushed esp"
  mov %ebx, %eax
  CHECK_EQ $0xb1, "popa restores ebx"

  mov %esp, %ebx
  push %esp
  pop %eax
  mov %ebx, %edx
  CHECK "push esp pushes the old esp"

  mov %esp, %ebx
  lea -64(%esp), %eax
  push %eax
  pop %esp                          /* ESP = the popped value */
  mov %esp, %eax
  lea -64(%ebx), %edx
  mov %ebx, %esp
  CHECK "pop esp loads the popped value"

  mov %esp, %ebx
  push $0xaaaa
  push $0xbbbb
  pop (%esp)                        /* the address is computed after the increment */
  mov %esp, %eax
  lea -4(%ebx), %edx
  CHECK "pop (%esp): esp"
  mov (%esp), %eax
  CHECK_EQ $0xbbbb, "pop (%esp) overwrites the next slot"
  mov %ebx, %esp

  mov %esp, %ebx
  push $-1
  pop %eax
  CHECK_EQ $0xffffffff, "push imm8 sign-extends"
  pushw $0x1234
  mov %ebx, %eax
  sub %esp, %eax
  CHECK_EQ $2, "pushw moves esp by 2"
  movzwl (%esp), %eax
  CHECK_EQ $0x1234, "pushw value"
  mov %ebx, %esp

  mov %esp, %ebx
  mov $0x5eb, %ebp
  enter $16, $0
  mov %ebp, %eax
  lea -4(%ebx), %edx
  CHECK "enter 16,0: ebp"
  mov %ebp, %eax
  sub %esp, %eax
  CHECK_EQ $16, "enter 16,0: esp = ebp - 16"
  mov (%ebp), %eax
  CHECK_EQ $0x5eb, "enter 16,0: old ebp pushed"
  leave
  mov %ebp, %eax
  CHECK_EQ $0x5eb, "leave restores ebp"
  mov %esp, %eax
  mov %ebx, %edx
  CHECK "leave restores esp"
  ret

/* ---- XLAT, CMPXCHG8B, CMPXCHG, BSWAP, XADD ---- */
test_exchange:
  mov $xlat_table, %ebx
  mov $0xffffff05, %eax
  xlat
  CHECK_EQ $0xffffff5f, "xlat al=5"
  mov $0x80, %eax
  xlat
  CHECK_EQ $0xda, "xlat al=0x80 (unsigned)"

  movl $0x22222222, qword
  movl $0x11111111, qword + 4
  mov $0x22222222, %eax
  mov $0x11111111, %edx
  mov $0x44444444, %ebx
  mov $0x33333333, %ecx
  mov $qword, %esi
  cmpxchg8b (%esi)
  setz %al
  movzbl %al, %eax
  CHECK_EQ $1, "cmpxchg8b equal: zf"
  mov qword, %eax
  CHECK_EQ $0x44444444, "cmpxchg8b equal: stores ebx"
  mov qword + 4, %eax
  CHECK_EQ $0x33333333, "cmpxchg8b equal: stores ecx"
  xor %eax, %eax
  xor %edx, %edx
  cmpxchg8b (%esi)
  setz %bl
  push %edx
  movzbl %bl, %eax
  CHECK_EQ $0, "cmpxchg8b different: zf"
  mov (%esi), %eax                  /* EAX was loaded from memory; reload to print it */
  CHECK_EQ $0x44444444, "cmpxchg8b different: memory unchanged"
  pop %eax
  CHECK_EQ $0x33333333, "cmpxchg8b different: loads edx"

  movl $10, dword
  mov $10, %eax
  mov $20, %ecx
  cmpxchg %ecx, dword
  mov dword, %eax
  CHECK_EQ $20, "cmpxchg equal stores the source"
  mov $5, %eax
  cmpxchg %ecx, dword
  CHECK_EQ $20, "cmpxchg different loads eax"

  mov $0x12345678, %esi
  bswap %esi
  mov %esi, %eax
  CHECK_EQ $0x78563412, "bswap esi"

  movl $10, dword
  mov $5, %eax
  xadd %eax, dword
  CHECK_EQ $10, "xadd loads the old value"
  mov dword, %eax
  CHECK_EQ $15, "xadd stores the sum"
  mov $5, %eax
  xadd %eax, %eax
  CHECK_EQ $10, "xadd eax, eax"
  movl $0xffffffff, dword
  mov $1, %eax
  xadd %eax, dword
  setc %al
  setz %ah
  movzwl %ax, %eax
  CHECK_EQ $0x0101, "xadd carry out: cf zf"
  ret

/* ---- high-byte registers with memory operands ---- */
test_high_bytes:
  mov $buf, %edi
  movl $0, (%edi)
  mov $0x1234abcd, %eax
  mov %ah, (%edi)
  movzbl (%edi), %eax
  CHECK_EQ $0xab, "mov ah to memory"

  movb $0x22, (%edi)
  mov $0x00001100, %ebx
  add (%edi), %bh
  mov %ebx, %eax
  CHECK_EQ $0x3300, "add memory to bh"

  movl $0x88776655, buf + 4
  movl $0x44332211, buf + 8
  mov $buf, %esi
  mov $3, %ecx
  mov $0, %edx
  movb (%esi,%ecx,2), %dh           /* buf + 6 */
  mov %edx, %eax
  CHECK_EQ $0x7700, "mov sib memory to dh"
  mov $4, %ecx
  movb 1(%esi,%ecx,2), %dh          /* buf + 9 */
  mov %edx, %eax
  CHECK_EQ $0x2200, "mov sib+disp memory to dh"

  movb $0x5c, (%edi)
  mov $0x0000c500, %ecx
  xchg %ch, (%edi)
  mov %ecx, %eax
  CHECK_EQ $0x5c00, "xchg ch with memory: register"
  movzbl (%edi), %eax
  CHECK_EQ $0xc5, "xchg ch with memory: memory"

  movb $0x10, (%edi)
  mov $0x2000, %eax
  cmp %ah, (%edi)                   /* 0x10 - 0x20: borrow */
  setc %al
  movzbl %al, %eax
  CHECK_EQ $1, "cmp ah with memory: cf"

  mov $buf, %ebp
  movb $0x01, 3(%ebp)
  mov $0x7f00, %edx
  add %dh, 3(%ebp)
  movzbl 3(%ebp), %eax
  CHECK_EQ $0x80, "add dh to ebp-based memory"

  push $0
  mov $0xee00, %ebx
  mov %bh, 1(%esp)
  pop %eax
  CHECK_EQ $0xee00, "mov bh to esp-based memory"

  movb $3, (%edi)
  mov $0x0400, %ebx
  xadd %bh, (%edi)
  mov %ebx, %eax
  CHECK_EQ $0x0300, "xadd bh with memory: register"
  movzbl (%edi), %eax
  CHECK_EQ $7, "xadd bh with memory: memory"

  mov $0, %eax
  stc
  setc %ah
  CHECK_EQ $0x0100, "setc ah"

  mov $0xd5, %ah                    /* SF ZF AF PF CF */
  sahf
  mov $0, %eax
  lahf
  CHECK_EQ $0xd700, "sahf/lahf (bit 1 reads 1)"
  ret

/* ---- flags across memory accesses, blocks and callouts ---- */
test_flags:
  xor %ebx, %ebx
  stc
  mov dword, %eax
  mov %eax, dword
  adc $0, %ebx
  mov %ebx, %eax
  CHECK_EQ $1, "cf kept across a load and a store"

  xor %ebx, %ebx
  stc
  jmp 1f
1:
  adc $0, %ebx
  mov %ebx, %eax
  CHECK_EQ $1, "cf kept across a jmp"

  xor %ebx, %ebx
  stc
  cli
  adc $0, %ebx
  mov %ebx, %eax
  CHECK_EQ $1, "cf kept across cli"

  xor %ebx, %ebx
  mov $0x80, %dx
  stc
  outb %al, %dx
  inb %dx, %al
  adc $0, %ebx
  mov %ebx, %eax
  CHECK_EQ $1, "cf kept across out and in"

  movl $0x7fffffff, dword
  addl $1, dword
  seto %al
  sets %ah
  movzwl %ax, %eax
  CHECK_EQ $0x0101, "add to memory sets of and sf"

  mov $0x80000001, %ebx
  xor %ecx, %ecx
  stc
  shl %cl, %ebx
  setc %al
  movzbl %al, %eax
  CHECK_EQ $1, "shl by 0 keeps cf"
  mov $33, %cl                      /* masked to 1 */
  shl %cl, %ebx
  mov %ebx, %eax
  CHECK_EQ $2, "shl by 33 shifts by 1"

  mov $0x1ffff, %ecx
  inc %cx
  mov %ecx, %eax
  CHECK_EQ $0x10000, "inc cx wraps in the low 16 bits"
  ret

/* ---- addressing forms ---- */
test_addressing:
  movl $0xabcd1234, tbl + 24
  mov $3, %eax
  mov tbl(,%eax,8), %ecx            /* SIB, no base: disp32 + index*8 */
  mov %ecx, %eax
  CHECK_EQ $0xabcd1234, "load disp32 + index*8"
  mov $3, %eax
  lea tbl(,%eax,8), %ecx
  mov %ecx, %eax
  CHECK_EQ $tbl+24, "lea disp32 + index*8"
  mov $2, %eax
  movl $0x55667788, tbl + 4(,%eax,4)
  mov tbl + 12, %eax
  CHECK_EQ $0x55667788, "store disp32 + index*4"
  mov $2, %eax
  movw $0x99aa, tbl + 32(,%eax,2)
  movzwl tbl + 36, %eax
  CHECK_EQ $0x99aa, "16-bit store disp32 + index*2"

  mov $tbl + 24, %ebp
  mov 0(%ebp), %eax                 /* mod 01, disp8 = 0 */
  CHECK_EQ $0xabcd1234, "ebp base with disp8 0"
  push $0x7788
  mov (%esp), %eax                  /* SIB with ESP base */
  add $4, %esp
  CHECK_EQ $0x7788, "esp base"
  mov $tbl, %ebx
  mov $7, %ecx
  mov -4(%ebx,%ecx,4), %eax         /* tbl + 24 */
  CHECK_EQ $0xabcd1234, "base + index*4 - 4"
  ret

.data
  .p2align 2
arr_77797: .long 7, 7, 7, 9, 7
arr_12375: .long 1, 2, 3, 7, 5
dword: .long 0
  .p2align 3
qword: .quad 0
buf: .skip 32
tbl: .skip 64
str_abcdx: .ascii "abcdXf"
str_abcdx2: .ascii "abcdXf"
str_abcdy: .ascii "abcdYf"
str_hello: .asciz "hello"
  .p2align 4
xlat_table:                         /* xlat_table[i] = i ^ 0x5a */
  .irp hi, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
  .irp lo, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
  .byte ((\hi * 16) + \lo) ^ 0x5a
  .endr
  .endr
