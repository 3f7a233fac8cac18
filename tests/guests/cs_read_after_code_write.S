/* cs_read_after_code_write: stores into the page of the code being run, each followed by an
 * instruction whose memory operand goes through a segment the monitor checks (a CS override, or
 * a limited ES), and a checked store that itself lands in the code page (issue 17, defect 2:
 * bt re-ran such an instruction forever). Intel SDM Vol. 3A §5.3-5.4: the accesses are within
 * the limits and allowed by the types, so each runs once, as an ordinary load or store; §11.6:
 * a store to the code page does not change what instructions already fetched do. One line per
 * check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every check passed
 * (status 1). */
#include "guest.inc"

#define LIMITED_ES 0x18 /* data, base 0, limit 16 MiB - 1 (4 KiB granular): checked by bt */

MULTIBOOT_HEADER

GUEST_ENTRY
  lgdt gdt_desc
  /* A store into this code page, then a load through CS, 100 times. */
  xor %esi, %esi
  mov $100, %ecx
1:
  movl %ecx, scratch
  mov %cs:scratch, %eax
  add %eax, %esi
  loop 1b
  mov %esi, %eax
  CHECK_EQ $5050, "loads through cs after stores into the code page: sum"
  /* The same through a limited ES, and checked stores through it into the code page. */
  mov $LIMITED_ES, %ax
  mov %ax, %es
  xor %esi, %esi
  mov $100, %ecx
1:
  movl %ecx, scratch
  mov %es:scratch, %eax
  add %eax, %esi
  mov %eax, %es:scratch2
  loop 1b
  mov %esi, %eax
  CHECK_EQ $5050, "loads through a limited es after stores into the code page: sum"
  mov scratch2, %eax
  CHECK_EQ $1, "the last checked store into the code page"
  mov $DATA_SEL, %ax
  mov %ax, %es
  CHECKS_DONE "cs_read_after_code_write"

  .p2align 4
scratch: .long 0
scratch2: .long 0

.data
  .p2align 3
gdt:
  .quad 0
  SEG_DESC 0, 0xfffff, 0x9b, 0xc    /* 0x08 code */
  SEG_DESC 0, 0xfffff, 0x93, 0xc    /* 0x10 data */
  SEG_DESC 0, 0x00fff, 0x93, 0xc    /* 0x18 data, limit 16 MiB - 1 */
  GDT_END
