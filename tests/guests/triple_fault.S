/* triple_fault: loads an IDT with limit 0 and executes UD2. #UD cannot be delivered (vector 6 is
 * beyond the IDT limit) so the CPU raises #GP, which cannot be delivered either: #DF, then a
 * triple fault, i.e. shutdown (Intel SDM Vol. 3A §6.15, "Interrupt 8 - Double Fault Exception").
 * vmbt must end the run with status 2 and a "guest shutdown (triple fault)" message.
 * UD2 rather than INT3: kvm-pvm (this workplace's KVM) cannot emulate INT3/INT n at all and stops
 * with KVM_EXIT_INTERNAL_ERROR instead of a shutdown; softint.S covers INT3 separately. */
#include "guest.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  mov $msg, %esi
  call puts
  lidt empty_idt
  ud2
  mov $msg_survived, %esi
  call puts
  EXIT(1)

.section .rodata
  .p2align 2
empty_idt:
  .word 0                           /* limit 0: no vector fits */
  .long 0
msg: .asciz "about to triple fault\n"
msg_survived: .asciz "FAIL survived ud2 with an empty IDT\n"
