/* bcd_enter: the BCD adjust instructions and ENTER with a non-zero nesting level (Intel SDM
 * Vol. 2A DAA, DAS, AAA, AAS, AAM, AAD, ENTER: the pseudocode there gives every value below).
 * One line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every
 * check passed (status 1).
 *
 * BCD checks print (defined flags << 16) | AX, the flags being LAHF's AH masked to the flags the
 * instruction defines: DAA/DAS SF ZF AF PF CF (0xd5), AAA/AAS AF CF (0x11), AAM/AAD SF ZF PF
 * (0xc4). The inputs avoid AL values where the SDM's older "AL +/- 6" and newer "AX +/- 6/106H"
 * forms of AAA/AAS differ.
 * ENTER size, L pushes EBP, copies L-1 display pointers from the old frame, pushes the new frame
 * pointer, then EBP = the new frame and ESP -= size; LEAVE undoes it.
 * kvm-pvm cannot emulate DAA, AAA, AAS or ENTER with a non-zero nesting level, hence the skip. */
#include "guest.inc"

/* After an adjust instruction: EAX = ((AH after LAHF) & mask) << 16 | AX. Clobbers EBX. */
.macro BCD_RESULT mask
  movzwl %ax, %ebx
  lahf
  movzbl %ah, %eax
  and $(\mask), %eax
  shl $16, %eax
  or %ebx, %eax
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  call test_daa_das
  call test_aaa_aas
  call test_aam_aad
  call test_enter
  CHECKS_DONE "bcd_enter"

test_daa_das:
  mov $0x79, %eax
  add $0x35, %al                    /* 0xae, AF 0, CF 0 */
  daa                               /* 79 + 35 = 114: AL 0x14, CF 1, AF 1, PF 1 */
  BCD_RESULT 0xd5
  CHECK_EQ $0x00150014, "daa 0x79+0x35"
  mov $0x38, %eax
  add $0x45, %al                    /* 0x7d */
  daa                               /* 38 + 45 = 83: AL 0x83, AF 1, SF 1 */
  BCD_RESULT 0xd5
  CHECK_EQ $0x00900083, "daa 0x38+0x45"
  mov $0x99, %eax
  add $0x01, %al                    /* 0x9a */
  daa                               /* 99 + 1 = 100: AL 0x00, CF 1, AF 1, ZF 1, PF 1 */
  BCD_RESULT 0xd5
  CHECK_EQ $0x00550000, "daa 0x99+0x01"

  mov $0x35, %eax
  sub $0x47, %al                    /* 0xee, CF 1, AF 1 */
  das                               /* 35 - 47 = -12: AL 0x88, CF 1, AF 1, SF 1, PF 1 */
  BCD_RESULT 0xd5
  CHECK_EQ $0x00950088, "das 0x35-0x47"
  mov $0x86, %eax
  sub $0x07, %al                    /* 0x7f, AF 1 */
  das                               /* 86 - 07 = 79: AL 0x79, AF 1 */
  BCD_RESULT 0xd5
  CHECK_EQ $0x00100079, "das 0x86-0x07"
  ret

test_aaa_aas:
  mov $0x0008, %eax
  add $9, %al                       /* 0x11, AF 1 */
  aaa                               /* AX + 0x106 = 0x117, AL &= 0xf: 0x0107, AF 1, CF 1 */
  BCD_RESULT 0x11
  CHECK_EQ $0x00110107, "aaa 8+9"
  mov $0x0105, %eax
  add $3, %al                       /* 0x08, AF 0 */
  aaa                               /* no adjust: 0x0108, AF 0, CF 0 */
  BCD_RESULT 0x11
  CHECK_EQ $0x00000108, "aaa 0x0105+3"

  mov $0x0102, %eax
  sub $5, %al                       /* 0xfd, AF 1 */
  aas                               /* AX - 6 = 0x01f7, AH - 1, AL &= 0xf: 0x0007, AF 1, CF 1 */
  BCD_RESULT 0x11
  CHECK_EQ $0x00110007, "aas 0x0102-5"
  mov $0x0209, %eax
  sub $4, %al                       /* 0x05, AF 0 */
  aas                               /* no adjust: 0x0205, AF 0, CF 0 */
  BCD_RESULT 0x11
  CHECK_EQ $0x00000205, "aas 0x0209-4"
  ret

test_aam_aad:
  mov $0x003f, %eax
  aam                               /* 63 = 6*10 + 3: AX 0x0603, PF 1 */
  BCD_RESULT 0xc4
  CHECK_EQ $0x00040603, "aam 63"
  mov $0x003f, %eax
  aam $16                           /* 63 = 3*16 + 15: AX 0x030f, PF 1 */
  BCD_RESULT 0xc4
  CHECK_EQ $0x0004030f, "aam 16 63"
  mov $0x0607, %eax
  aad                               /* 6*10 + 7 = 67: AX 0x0043, PF 0 */
  BCD_RESULT 0xc4
  CHECK_EQ $0x00000043, "aad 0x0607"
  mov $0x0305, %eax
  aad $16                           /* 3*16 + 5 = 53: AX 0x0035, PF 1 */
  BCD_RESULT 0xc4
  CHECK_EQ $0x00040035, "aad 16 0x0305"
  mov $0x0000, %eax
  aam                               /* 0: ZF 1, PF 1 */
  BCD_RESULT 0xc4
  CHECK_EQ $0x00440000, "aam 0"
  ret

/* ENTER with nesting level L from a fake old frame at old_frame (EBP = old_frame + 16, whose
 * display words below it are 0xd1500001, 0xd1500002, ...). ESI = the ESP before ENTER. */
.macro ENTER_TEST level, size
  mov $old_frame + 16, %ebp
  mov %esp, %esi
  enter $\size, $\level
  mov %ebp, new_ebp
  mov %esp, new_esp
  mov (%ebp), %eax
  mov %eax, slot0
  mov -4(%ebp), %eax
  mov %eax, slot1
  mov -8(%ebp), %eax
  mov %eax, slot2
  mov -12(%ebp), %eax
  mov %eax, slot3
  leave
  mov %ebp, after_ebp
  mov %esp, after_esp
  mov %esi, %esp
.endm

test_enter:
  ENTER_TEST 1, 8
  lea -4(%esi), %edx
  mov new_ebp, %eax
  CHECK "enter 8,1: ebp = esp - 4"
  mov new_ebp, %edx
  sub $12, %edx
  mov new_esp, %eax
  CHECK "enter 8,1: esp = ebp - 4 - 8"
  mov slot0, %eax
  CHECK_EQ $old_frame+16, "enter 8,1: old ebp"
  mov new_ebp, %edx
  mov slot1, %eax
  CHECK "enter 8,1: frame pointer pushed"
  mov after_ebp, %eax
  CHECK_EQ $old_frame+16, "enter 8,1 leave: ebp"
  mov after_esp, %eax
  mov %esi, %edx
  CHECK "enter 8,1 leave: esp"

  ENTER_TEST 2, 8
  lea -4(%esi), %edx
  mov new_ebp, %eax
  CHECK "enter 8,2: ebp = esp - 4"
  mov new_ebp, %edx
  sub $16, %edx
  mov new_esp, %eax
  CHECK "enter 8,2: esp = ebp - 8 - 8"
  mov slot0, %eax
  CHECK_EQ $old_frame+16, "enter 8,2: old ebp"
  mov slot1, %eax
  CHECK_EQ $0xd1500001, "enter 8,2: display copied from the old frame"
  mov new_ebp, %edx
  mov slot2, %eax
  CHECK "enter 8,2: frame pointer pushed"

  ENTER_TEST 3, 4
  mov new_ebp, %edx
  sub $16, %edx
  mov new_esp, %eax
  CHECK "enter 4,3: esp = ebp - 12 - 4"
  mov slot1, %eax
  CHECK_EQ $0xd1500001, "enter 4,3: first display entry"
  mov slot2, %eax
  CHECK_EQ $0xd1500002, "enter 4,3: second display entry"
  mov new_ebp, %edx
  mov slot3, %eax
  CHECK "enter 4,3: frame pointer pushed"
  mov after_ebp, %eax
  CHECK_EQ $old_frame+16, "enter 4,3 leave: ebp"
  ret

.data
  .p2align 2
old_frame:                          /* EBP = old_frame + 16 */
  .long 0xd1500004, 0xd1500003, 0xd1500002, 0xd1500001
  .long 0x0e0b0e0b
new_ebp: .long 0
new_esp: .long 0
after_ebp: .long 0
after_esp: .long 0
slot0: .long 0
slot1: .long 0
slot2: .long 0
slot3: .long 0
