/* indirect_collisions: indirect calls and returns whose targets share the low 16 bits of their
 * address, the index of bt's indirect-branch tables (two-way: a slot and its victim slot).
 * Four functions 64 KiB apart, called through registers in patterns that keep two, three and four
 * of them hot at once, each adding its own value: a wrong block reached through a slot would
 * add the wrong one. The same sums on every engine and on hardware. "ok <what>" per check; exits
 * with 0 when every check passed (status 1). */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  /* Two targets of one slot, alternating: 1000 x (f0 + f1). */
  xor %ebx, %ebx
  mov $1000, %ecx
1:
  mov $f0, %eax
  call *%eax
  mov $f1, %eax
  call *%eax
  dec %ecx
  jnz 1b
  mov %ebx, %eax
  CHECK_EQ $3000, "two targets of one slot"
  /* Three, round robin: more than the two ways hold. */
  xor %ebx, %ebx
  mov $1000, %ecx
1:
  mov $f0, %eax
  call *%eax
  mov $f1, %eax
  call *%eax
  mov $f2, %eax
  call *%eax
  dec %ecx
  jnz 1b
  mov %ebx, %eax
  CHECK_EQ $7000, "three targets of one slot"
  /* Four, through a table in memory, in an irregular order (jmp *mem and call *mem). */
  xor %ebx, %ebx
  xor %esi, %esi
  mov $4000, %ecx
1:
  mov %esi, %edx
  and $7, %edx
  call *order(, %edx, 4)
  inc %esi
  dec %ecx
  jnz 1b
  mov %ebx, %eax
  CHECK_EQ $15000, "four targets, irregular order"
  /* Returns to an address that shares its slot with the functions' entries: f0 returns
   * alternately to an ordinary address and to that one. */
  xor %ebx, %ebx
  mov $1000, %ecx
3:
  mov $f0, %eax
  call *%eax
  push $back
  jmp *%eax
returned:
  mov %ebx, %eax
  CHECK_EQ $2000, "returns and entries"
  /* Targets read through [base + disp], an absolute [disp] and [base + disp] with a
   * displacement below -496 MiB (the effective address wraps modulo 2^32, Intel SDM Vol. 1
   * §3.7.5): bt reads these without an lea (docs/bt.md), the last from the window's copy. */
  xor %ebx, %ebx
  mov $order, %edi
  call *4(%edi)                     /* f3: 8 */
  call *order + 8                   /* f1: 2 */
  lea order + 0x40000000, %edi
  call *-0x40000000 + 12(%edi)      /* f2: 4 */
  push $4f
  jmp *-0x40000000(%edi)            /* f0: 1, returning to 4: */
4:
  mov %ebx, %eax
  CHECK_EQ $15, "targets through one-register and far displacements"
  CHECKS_DONE "indirect_collisions"

.section .rodata
.balign 4
order:
  .long f0, f3, f1, f2, f0, f3, f1, f2
  /* one pass of the 8 entries adds 1+8+2+4+1+8+2+4; 4000 calls make 500 passes */

/* The functions, 64 KiB apart so their addresses share the low 16 bits, and a return point that
 * shares them too (.org keeps the ELF's alignment at 4 KiB: the Multiboot header must stay in
 * the first 8 KiB of the file). */
.text
f0:
  add $1, %ebx
  ret
.org f0 + 0x10000
f1:
  add $2, %ebx
  ret
.org f0 + 0x20000
f2:
  add $4, %ebx
  ret
.org f0 + 0x30000
f3:
  add $8, %ebx
  ret
.org f0 + 0x40000
back:
  dec %ecx
  jz returned
  jmp 3b
