/* straddle_fault: an instruction that straddles into a page not present yet (issue 17, defect 9:
 * an unmodified Debian installer ended with "not a system instruction" at such an instruction).
 *
 * `mov $0x600dcafe, %eax` (B8 FE CA 0D 60) sits at CODE_PAGE + 0xffd: three bytes in CODE_PAGE,
 * two in the next page, which is not mapped. Calling it faults: #PF with CR2 = the first byte of
 * the next page, error code 0 (a supervisor read of a not-present page: an instruction fetch is a
 * read without NX, Intel SDM Vol. 3A §4.7), the saved EIP at the instruction (§6.15, a fault).
 * The handler maps the page (the rest of the MOV, then RET) and returns; the instruction runs
 * again, whole: EAX = 0x600dcafe. Then it runs a second and a third time without a fault. */
#include "guest.inc"
#include "paging.inc"

#define CODE_PAGE 0x40000000
#define NEXT_PAGE 0x40001000
#define INSN (CODE_PAGE + 0xffd)

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, kernel_pd
  mov %eax, %ebx
  call pg_alloc                     /* CODE_PAGE's frame: the MOV's first three bytes at 0xffd */
  movb $0xb8, 0xffd(%eax)
  movb $0xfe, 0xffe(%eax)
  movb $0xca, 0xfff(%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov $CODE_PAGE, %eax
  call pg_map
  call pg_alloc                     /* NEXT_PAGE's frame, mapped by the #PF handler */
  movb $0x0d, 0(%eax)
  movb $0x60, 1(%eax)
  movb $0xc3, 2(%eax)               /* ret */
  mov %eax, next_frame
  call pg_enable
  call pg_idt_init
  movl $map_next_page, pg_pf_hook

  xor %eax, %eax
  mov $INSN, %ecx
  call *%ecx
  CHECK_EQ $0x600dcafe, "the straddling mov after its #PF"
  mov pg_pf_count, %eax
  CHECK_EQ $1, "one #PF"
  mov pg_pf_cr2, %eax
  CHECK_EQ $NEXT_PAGE, "#PF cr2: the first byte of the next page"
  mov pg_pf_err, %eax
  CHECK_EQ $0, "#PF error code: supervisor read, not present"
  mov pg_pf_eip, %eax
  CHECK_EQ $INSN, "#PF saved eip: the straddling instruction"
  xor %eax, %eax
  mov $INSN, %ecx
  call *%ecx
  CHECK_EQ $0x600dcafe, "the straddling mov again"
  xor %eax, %eax
  mov $INSN, %ecx
  call *%ecx
  CHECK_EQ $0x600dcafe, "and a third time"
  mov pg_pf_count, %eax
  CHECK_EQ $1, "still one #PF"
  CHECKS_DONE "straddle_fault"

/* pg_pf_hook: EAX = CR2, EDX = error code. Maps NEXT_PAGE; EAX = 0: resolved. */
map_next_page:
  cmp $NEXT_PAGE, %eax
  jne 1f
  mov next_frame, %edx
  or $(PTE_P | PTE_RW), %edx
  mov kernel_pd, %ebx
  call pg_map
  xor %eax, %eax
  ret
1:
  mov $1, %eax
  ret

.data
  .p2align 2
kernel_pd: .long 0
next_frame: .long 0
