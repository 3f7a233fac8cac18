/* cpuid_inline: bt answers a CPUID leaf in translated code once the monitor has answered it
 * (docs/bt.md, "CPUID"). Every leaf goes through one CPUID instruction twice: the first answer
 * comes from the monitor (the slot is empty at boot), the second from the table; they must agree
 * in all four registers, whatever ECX was. Leaves that share a slot (0x80000000 and 0x80) must not
 * answer for each other. Holds on every engine (kvm answers both from its own CPUID). */
#include "guest.inc"

MULTIBOOT_HEADER

/* The leaf in EAX twice through cpuid_site, ECX different each time; both answers compared. */
.macro SAME_TWICE leaf, name
  mov $\leaf, %eax
  xor %ecx, %ecx
  call cpuid_site
  mov %eax, first
  mov %ebx, first + 4
  mov %ecx, first + 8
  mov %edx, first + 12
  mov $\leaf, %eax
  mov $0x5a5a5a5a, %ecx
  call cpuid_site
  xor first, %eax
  xor first + 4, %ebx
  xor first + 8, %ecx
  xor first + 12, %edx
  or %ebx, %eax
  or %ecx, %eax
  or %edx, %eax
  CHECK_EQ $0, "\name"
.endm

GUEST_ENTRY
  SAME_TWICE 0, "leaf 0 twice"
  SAME_TWICE 1, "leaf 1 twice"
  SAME_TWICE 2, "leaf 2 twice"
  SAME_TWICE 0x17, "leaf above the highest basic leaf twice"
  SAME_TWICE 0x40000000, "hypervisor leaf twice"
  SAME_TWICE 0x80000000, "leaf 0x80000000 twice"
  SAME_TWICE 0x80000004, "brand string leaf twice"
  SAME_TWICE 0x80000008, "leaf above the highest extended leaf twice"
  SAME_TWICE 0xffffffff, "leaf 0xffffffff twice"

  /* 0x80000000 and 0x80 share a slot: each must keep its own answer. (EAX: the highest extended
   * leaf, against what an out-of-range basic leaf gives, which differ on any CPU.) */
  mov $0x80000000, %eax
  call cpuid_site
  mov %eax, %esi
  mov $0x80, %eax
  call cpuid_site
  mov %eax, %edi
  mov $0x80000000, %eax
  call cpuid_site
  mov %esi, %edx
  CHECK "0x80000000 after 0x80"
  mov $0x80, %eax
  call cpuid_site
  mov %edi, %edx
  CHECK "0x80 after 0x80000000"
  xor %eax, %eax
  cmp %esi, %edi
  setne %al
  CHECK_EQ $1, "the two leaves differ"

  /* Flags survive CPUID (no flag changes, SDM Vol. 2A), inline answer or not. */
  mov $1, %eax
  stc
  call cpuid_site
  setc %al
  movzbl %al, %eax
  CHECK_EQ $1, "carry kept across an inline answer"
  CHECKS_DONE "cpuid_inline"

cpuid_site:
  cpuid
  ret

.data
first: .long 0, 0, 0, 0
