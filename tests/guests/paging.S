/* paging: turns on 32-bit paging with an identity-mapped 4 MiB PSE page (CR4.PSE, CR3, CR0.PG;
 * Intel SDM Vol. 3A §4.3) covering the guest, plus a second 4 MiB page at 4 MiB that aliases
 * physical 0-4 MiB. Prints "paging on", checks that a store through the alias is seen at the
 * identity address, and exits with 0 (status 1).
 * Hosts whose KVM refuses 32-bit paging (kvm-pvm, no VT-x/AMD-V) cannot run this on the kvm
 * engine: vmbt must say so ("cannot run 32-bit paged guests"); see `#! paged` in run_guest.sh. */
#include "guest.inc"

#define ALIAS_OFFSET 0x400000

MULTIBOOT_HEADER

GUEST_ENTRY
  /* PDE 0: virtual 0-4 MiB -> physical 0; PDE 1: virtual 4-8 MiB -> physical 0 too. */
  movl $(0 | PDE_PS | PDE_RW | PDE_P), page_directory
  movl $(0 | PDE_PS | PDE_RW | PDE_P), page_directory + 4
  PAGING_ON_PSE page_directory
  mov $msg_on, %esi
  call puts

  movl $0x5a5aa5a5, probe + ALIAS_OFFSET
  mov probe, %eax
  cmp $0x5a5aa5a5, %eax
  jne 2f
  mov $msg_alias_ok, %esi
  call puts
  EXIT(0)
2:
  mov $msg_alias_bad, %esi
  call puts
  call print_hex32
  call newline
  EXIT(1)

.data
  .p2align 2
probe:
  .long 0

.bss
  .p2align 12
page_directory:
  .skip 4096

.section .rodata
msg_on: .asciz "paging on\n"
msg_alias_ok: .asciz "ok 4 MiB alias\n"
msg_alias_bad: .asciz "FAIL 4 MiB alias read "
