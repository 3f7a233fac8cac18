/* direct_calls: sensitive instructions that bt runs as direct calls into the monitor, or inline,
 * in the middle of a translation block, checked against the results the Intel SDM documents:
 *
 *   - CPUID (Vol. 2A CPUID: leaf 0 returns the vendor string in EBX, EDX, ECX; "Flags Affected:
 *     None"), between ordinary instructions of one block: the registers after it and the
 *     arithmetic flags set before it.
 *   - OUT/IN to the 16550's scratch register (port 0x3ff keeps what is written: PC16550D data
 *     sheet, SCR), flags untouched (Vol. 2A IN, Vol. 2B OUT: none affected).
 *   - POPFD at CPL 0 (Vol. 2B POPF: EFLAGS <- image AND 257FD5H): every arithmetic flag and DF
 *     loaded, IF loaded, AC loaded (an image that changes AC takes the monitor's path).
 *   - DIV/IDIV with a zero divisor (Vol. 2A DIV/IDIV: #DE, a fault: the saved EIP is the DIV's,
 *     nothing changed, the saved EFLAGS are the ones before it) for register, high-byte register
 *     and memory divisors; non-zero divisors still divide (quotient and remainder checked), and
 *     a quotient that does not fit still raises #DE.
 *
 * One line per check ("ok <what>" or "FAIL <what> got .. want .."); exit 0 when all passed.
 * QEMU TCG prints the same lines for this guest. */
#include "guest.inc"

#define ARITH_FLAGS 0x8d5 /* CF PF AF ZF SF OF */
#define DF_FLAG 0x400
#define IF_FLAG 0x200
#define AC_FLAG 0x40000

MULTIBOOT_HEADER
GUEST_ENTRY
  call exc_init
  movl $1, exc_no_iret              /* handlers return with POPF+RET (kvm-pvm cannot do IRET) */
  mov $0xff, %al                    /* every PIC line masked: no interrupt while IF=1 below */
  outb %al, $0x21
  outb %al, $0xa1

  /* CPUID leaf 0 between ordinary instructions, with every arithmetic flag set before it. */
  push $(ARITH_FLAGS | 0x2)
  popf
  mov $0, %eax                      /* MOV, not XOR: the flags must survive up to PUSHF */
  mov $0x11111111, %esi
  cpuid
  lea 1(%esi), %edi                 /* the block goes on after the call */
  pushf
  pop %esi
  mov %ebx, saved_ebx
  mov %edx, saved_edx
  mov %ecx, saved_ecx
  mov saved_ebx, %eax
  CHECK_EQ $0x756e6547, "cpuid 0 ebx 'Genu'"
  mov saved_edx, %eax
  CHECK_EQ $0x49656e69, "cpuid 0 edx 'ineI'"
  mov saved_ecx, %eax
  CHECK_EQ $0x6c65746e, "cpuid 0 ecx 'ntel'"
  mov %edi, %eax
  CHECK_EQ $0x11111112, "the instruction after cpuid ran"
  mov %esi, %eax
  and $ARITH_FLAGS, %eax
  CHECK_EQ $ARITH_FLAGS, "cpuid leaves the flags alone"

  /* OUT then IN through the UART scratch register, flags clear before and checked after. */
  push $0x2
  popf
  mov $0x3ff, %edx
  mov $0xa5, %al
  outb %al, %dx
  mov $0, %eax
  inb %dx, %al
  mov %eax, %ebx
  pushf
  pop %esi
  mov %ebx, %eax
  CHECK_EQ $0xa5, "in reads back the scratch register"
  mov %esi, %eax
  and $ARITH_FLAGS, %eax
  CHECK_EQ $0, "in/out leave the flags alone"
  mov $0x5a, %al
  outb %al, $0xff                   /* immediate-port form: port 0xff, unclaimed, ignored */
  mov $0x3ff, %edx
  inb %dx, %al
  movzbl %al, %eax
  CHECK_EQ $0xa5, "a write to another port leaves the scratch register"

  /* POPFD at CPL 0: arithmetic flags, DF and IF from the image. */
  push $(ARITH_FLAGS | DF_FLAG | IF_FLAG | 0x2)
  popf
  pushf
  pop %eax
  cli
  cld
  and $(ARITH_FLAGS | DF_FLAG | IF_FLAG), %eax
  CHECK_EQ $(ARITH_FLAGS | DF_FLAG | IF_FLAG), "popfd loads the arithmetic flags, DF and IF"
  push $0x2
  popf
  pushf
  pop %eax
  and $(ARITH_FLAGS | DF_FLAG | IF_FLAG), %eax
  CHECK_EQ $0, "popfd clears them"
  /* AC is not one of the flags the inline form loads: the monitor's POPF does it. */
  push $(AC_FLAG | 0x2 | 0x1)
  popf
  pushf
  pop %eax
  and $(AC_FLAG | 0x1), %eax
  CHECK_EQ $(AC_FLAG | 0x1), "popfd loads AC and CF"
  push $0x2
  popf
  pushf
  pop %eax
  and $AC_FLAG, %eax
  CHECK_EQ $0, "popfd clears AC"

  /* DIV by a zero register: #DE at the DIV, registers and flags as before it. */
  push $(0x1 | 0x40 | 0x2)          /* CF and ZF set before the DIV */
  popf
  mov $7, %eax
  mov $0, %edx                      /* MOV: the flags set above stay */
  mov $0, %ecx
  EXC_ARM 1f
0:
  div %ecx
  mov $0xdead, %eax                 /* skipped: the handler resumes at 1 */
1:
  EXC_CHECK "#DE div ecx=0", 0, NOERR, 0b
  CHECK_EQ $7, "div ecx=0 left eax"
  mov exc_eflags, %eax
  and $(0x1 | 0x40), %eax
  CHECK_EQ $(0x1 | 0x40), "div ecx=0 saved the flags from before it"

  /* DIV by a zero high-byte register: AX / AH with AH = 0. */
  mov $0x0005, %eax
  EXC_ARM 1f
0:
  div %ah
1:
  EXC_CHECK "#DE div ah=0", 0, NOERR, 0b

  /* DIV by a zero word in memory, IDIV by a zero byte in memory. */
  mov $100, %eax
  xor %edx, %edx
  EXC_ARM 1f
0:
  divl zero_dword
1:
  EXC_CHECK "#DE div [zero dword]", 0, NOERR, 0b
  mov $100, %eax
  EXC_ARM 1f
0:
  idivb zero_dword
1:
  EXC_CHECK "#DE idiv byte [zero]", 0, NOERR, 0b
  mov $100, %eax
  xor %edx, %edx
  EXC_ARM 1f
0:
  divw zero_dword
1:
  EXC_CHECK "#DE div word [zero]", 0, NOERR, 0b

  /* Non-zero divisors still divide. */
  mov $100, %eax
  xor %edx, %edx
  mov $7, %ecx
  div %ecx
  mov %edx, %ebx
  CHECK_EQ $14, "100 / 7 quotient"
  mov %ebx, %eax
  CHECK_EQ $2, "100 / 7 remainder"
  mov $100, %eax
  xor %edx, %edx
  divl seven_dword
  CHECK_EQ $14, "100 / [7] quotient"
  mov $-100, %eax
  cdq
  idivl seven_dword
  mov %edx, %ebx
  CHECK_EQ $-14, "-100 / [7] signed quotient"
  mov %ebx, %eax
  CHECK_EQ $-2, "-100 / [7] signed remainder"
  mov $100, %eax
  mov $3, %bh
  div %bh
  movzbl %al, %edx
  movzbl %ah, %ecx
  mov %edx, %eax
  CHECK_EQ $33, "ax 100 / bh 3 quotient"
  mov %ecx, %eax
  CHECK_EQ $1, "ax 100 / bh 3 remainder"

  /* A quotient that does not fit (EDX >= divisor) is #DE too. */
  mov $1, %edx
  mov $1, %ecx
  xor %eax, %eax
  EXC_ARM 1f
0:
  div %ecx
1:
  EXC_CHECK "#DE div quotient overflow", 0, NOERR, 0b

  CHECKS_DONE "direct_calls"

.data
  .p2align 2
zero_dword: .long 0
seven_dword: .long 7
saved_ebx: .long 0
saved_edx: .long 0
saved_ecx: .long 0

EXCEPTION_SUPPORT
