/* wrap_below_zero: accesses that wrap below linear address 0 (issue 17, defect 5: bt ended the
 * run with "unexpected host signal 11"). IA-32 address arithmetic is modulo 2^32 (Intel SDM
 * Vol. 3A §3.4.4 wrap-around, Vol. 2A "BT": the bit offset is signed): with a flat 4 GiB segment
 * and no paging, linear 0xFFFFFFxx is physical 0xFFFFFFxx, where nothing decodes on this machine
 * (reads give all ones, writes vanish, as on a PC bus); linear 0 and up is RAM.
 *   - STD; REP STOSB from EDI = 8 for 16 bytes: 9 bytes of RAM written (8 down to 0), 7 above
 *     the wrap vanish; EDI ends at 8 - 16 = 0xFFFFFFF8, ECX at 0.
 *   - STD; REP MOVSB from ESI = 4 (RAM) to a RAM buffer, 12 bytes: 5 from RAM, 7 all ones.
 * QEMU's pc machine differs on purpose here: its BIOS ROM sits at the top of the 4 GiB space.
 *   - STD; REPE CMPSB of 0xFF bytes against the all-ones bytes below 0: they compare equal.
 *   - BT of a bit 8 * 0x800 below the operand at 0x400 (negative register offset): the byte at
 *     linear 0xFFFFFC00 reads all ones, so CF = 1; BTS there leaves it so.
 * One line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every
 * check passed (status 1). */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  /* Linear 0-15: a known pattern (low memory is RAM here and free). */
  movl $0x11111111, 0
  movl $0x11111111, 4
  movl $0x11111111, 8
  movl $0x11111111, 12

  std
  mov $8, %edi
  mov $16, %ecx
  mov $0x5a, %al
  rep stosb
  cld
  mov %edi, %eax
  CHECK_EQ $0xfffffff8, "std rep stosb across 0: edi"
  mov %ecx, %eax
  CHECK_EQ $0, "std rep stosb across 0: ecx"
  mov 0, %eax
  CHECK_EQ $0x5a5a5a5a, "std rep stosb across 0: bytes 0-3"
  mov 8, %eax
  CHECK_EQ $0x1111115a, "std rep stosb across 0: bytes 8-11"
  mov 0xfffffffc, %eax
  CHECK_EQ $0xffffffff, "nothing stored below 0"

  movl $0x04030201, 0
  movl $0x08070605, 4
  std
  mov $4, %esi
  lea buf + 15, %edi
  mov $12, %ecx
  rep movsb
  cld
  mov %esi, %eax
  CHECK_EQ $0xfffffff8, "std rep movsb across 0: esi"
  mov buf + 12, %eax
  CHECK_EQ $0x05040302, "std rep movsb: bytes 4 down to 1"
  mov buf + 8, %eax
  CHECK_EQ $0x01ffffff, "std rep movsb: byte 0, then all ones from below 0"
  mov buf + 4, %eax
  CHECK_EQ $0xffffffff, "std rep movsb: all ones from below 0"

  std
  mov $0xffffffff, %esi
  lea ones + 15, %edi
  mov $16, %ecx
  repe cmpsb
  cld
  mov %ecx, %eax
  CHECK_EQ $0, "std repe cmpsb of all ones below 0: ecx"

  mov $-0x4000, %eax
  bt %eax, 0x400
  setc %al
  movzbl %al, %eax
  CHECK_EQ $1, "bt with a negative offset wraps below 0: cf"
  mov $-0x4000, %eax
  bts %eax, 0x400
  setc %al
  movzbl %al, %eax
  CHECK_EQ $1, "bts with a negative offset wraps below 0: cf"
  CHECKS_DONE "wrap_below_zero"

.data
  .p2align 4
buf: .fill 16, 1, 0
ones: .fill 16, 1, 0xff
