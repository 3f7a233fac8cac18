/* high_eip: code at linear 0x80000000 and at the last page below 4 GiB, reached through indirect
 * calls (issue 17, defect 7: bt negated the EIP as a signed 32-bit value when it built the block's
 * indirect entry, undefined behaviour for 0x80000000 that UBSan reports; the sanitizer build runs
 * this guest). Intel SDM Vol. 3A §4.3: the pages are mapped to frames holding
 * `mov $imm32, %eax; ret`; each call returns its value.
 * One line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every
 * check passed (status 1). */
#include "guest.inc"
#include "paging.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  call pg_build_identity
  call pg_new_pd
  mov %eax, %ebx
  mov $0x80000000, %eax
  mov $0x80808080, %ecx
  call map_code
  mov $0xfffff000, %eax
  mov $0xfefefefe, %ecx
  call map_code
  call pg_enable
  call pg_idt_init
  mov $0x80000000, %edx
  call *%edx
  CHECK_EQ $0x80808080, "call to 0x80000000"
  mov $0xfffff000, %edx
  call *%edx
  CHECK_EQ $0xfefefefe, "call to 0xfffff000"
  mov $0x80000000, %edx
  call *%edx
  CHECK_EQ $0x80808080, "call to 0x80000000 again (through the indirect table)"
  CHECKS_DONE "high_eip"

/* map_code: EAX = linear page, ECX = value, EBX = page directory: a fresh frame holding
 * `mov $ECX, %eax; ret` mapped there (supervisor, read-only). Clobbers EAX, EDX. */
map_code:
  push %eax
  call pg_alloc
  movb $0xb8, (%eax)
  mov %ecx, 1(%eax)
  movb $0xc3, 5(%eax)
  lea PTE_P(%eax), %edx
  pop %eax
  call pg_map
  ret
