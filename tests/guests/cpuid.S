/* cpuid: prints what CPUID reports: leaf 0 (highest basic leaf, vendor), leaf 1 (signature in
 * EAX, feature words EDX and ECX), leaf 0x80000000 (highest extended leaf) and the brand string of
 * leaves 0x80000002-0x80000004. EBX of leaf 1 (APIC ID, CLFLUSH size) is not printed. The expected
 * values are those of vmm/cpu_model.h (the one CPU model both engines present). Exits with 0. */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  /* Leaf 0: EAX = highest basic leaf, vendor in EBX, EDX, ECX. */
  xor %eax, %eax
  xor %ecx, %ecx
  cpuid
  mov %ebx, vendor
  mov %edx, vendor + 4
  mov %ecx, vendor + 8
  mov $msg_max_basic, %esi
  call puts
  call print_hex32
  call newline
  mov $msg_vendor, %esi
  call puts
  mov $vendor, %esi
  call puts
  call newline

  /* Leaf 1: signature and feature words. */
  mov $1, %eax
  xor %ecx, %ecx
  cpuid
  mov %ecx, %edi
  mov $msg_signature, %esi
  call puts
  call print_hex32
  call newline
  mov $msg_edx, %esi
  call puts
  mov %edx, %eax
  call print_hex32
  call newline
  mov $msg_ecx, %esi
  call puts
  mov %edi, %eax
  call print_hex32
  call newline

  /* Leaf 0x80000000: highest extended leaf. */
  mov $0x80000000, %eax
  xor %ecx, %ecx
  cpuid
  mov $msg_max_ext, %esi
  call puts
  call print_hex32
  call newline

  /* Leaves 0x80000002-0x80000004: 48 bytes of brand string, NUL padded. */
  mov $brand, %edi
  mov $0x80000002, %esi
1:
  mov %esi, %eax
  xor %ecx, %ecx
  cpuid
  mov %eax, 0(%edi)
  mov %ebx, 4(%edi)
  mov %ecx, 8(%edi)
  mov %edx, 12(%edi)
  add $16, %edi
  inc %esi
  cmp $0x80000005, %esi
  jne 1b
  mov $msg_brand, %esi
  call puts
  mov $brand, %esi
  call puts
  call newline
  EXIT(0)

.data
vendor:
  .skip 12
  .byte 0                           /* terminator */
brand:
  .skip 48
  .byte 0                           /* terminator, should the string fill all 48 bytes */

.section .rodata
msg_max_basic: .asciz "cpuid 0 max basic leaf "
msg_vendor: .asciz "cpuid 0 vendor "
msg_signature: .asciz "cpuid 1 eax "
msg_edx: .asciz "cpuid 1 edx "
msg_ecx: .asciz "cpuid 1 ecx "
msg_max_ext: .asciz "cpuid 0x80000000 max extended leaf "
msg_brand: .asciz "cpuid brand "
